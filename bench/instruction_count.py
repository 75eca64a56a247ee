"""Instructions per pipeline input of the compiled backtest loop, counted by callgrind.

Wall-clock figures on a shared VM move by 2x from one run to the next, which hides a
10-30% change in the loop's cost. Callgrind counts the instructions the CPU executes,
not seconds: the same sources, data and configuration give the same count, whatever
else the machine does. It cannot see cache misses or branch mispredictions, so it
complements ``bench/backtest_throughput.py`` rather than replacing it; it is the figure
to compare two versions of the code by (run this script in each checkout).

The script runs itself again under ``valgrind --tool=callgrind`` with instrumentation
off, after compiling the loop in a native run with a fresh Numba cache (a cache
that already holds kernels compiled for other callers links different machine code:
6% more instructions on the market maker), warms it up, and counts only the
``Backtest.run`` of the measured data, switched on and off by callgrind client requests from a tiny C shim
built here with gcc. Needs valgrind (with its headers) and gcc: on Debian,
``apt-get install valgrind gcc``.

Usage::

    python bench/instruction_count.py                     # market maker and SMA, 100k trades
    python bench/instruction_count.py --strategy mm --trades 300000

It takes a few minutes: everything runs some 50 times slower under callgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIM_SOURCE = r"""
#include <valgrind/callgrind.h>
void count_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void count_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION; }
"""
WARMUP_ROWS = 20_000


def build_shim(folder: Path) -> Path:
    """Compile the client-request shim; exit with the reason when the tools are missing."""
    for tool in ("valgrind", "gcc"):
        if shutil.which(tool) is None:
            sys.exit(f"instruction_count: {tool} is not installed (on Debian: apt-get install valgrind gcc)")
    src = folder / "count.c"
    lib = folder / "libcount.so"
    src.write_text(SHIM_SOURCE)
    done = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"instruction_count: cannot build the callgrind shim (valgrind headers missing?):\n{done.stderr}")
    return lib


def measure_child(strategy: str, n_trades: int, lib: str) -> None:
    """Under callgrind: warm up, then count one backtest; print its input and fill counts."""
    import ctypes

    sys.path.insert(0, str(ROOT / "bench"))
    import backtest_throughput as bench

    shim = ctypes.CDLL(lib)
    chunks = list(bench.Feed(n_trades, n_trades, with_quotes=strategy == "mm"))
    bench.build(strategy).run([chunks[0][:WARMUP_ROWS].copy()])
    backtest = bench.build(strategy)
    shim.count_start()
    result = backtest.run(chunks)
    shim.count_stop()
    print(f"RESULT inputs={result.n_inputs} fills={len(result.fills)}")


def count(strategy: str, n_trades: int, folder: Path, lib: Path) -> tuple[int, int, int]:
    """Run one measurement under callgrind; return (instructions, inputs, fills).

    A native run of the same code first compiles the loop into the cache (under
    valgrind that alone would take many minutes); the client requests do nothing there."""
    warm = [sys.executable, __file__, "--child", "--strategy", strategy, "--trades", str(WARMUP_ROWS),
            "--lib", str(lib)]
    done = subprocess.run(warm, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"instruction_count: the warm-up run failed:\n{done.stderr[-3000:]}")
    out = folder / f"callgrind.{strategy}"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
           f"--callgrind-out-file={out}", sys.executable, __file__, "--child", "--strategy", strategy,
           "--trades", str(n_trades), "--lib", str(lib)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = re.search(r"RESULT inputs=(\d+) fills=(\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        sys.exit(f"instruction_count: the measured run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    dumps = sorted(folder.glob(f"callgrind.{strategy}.*"))
    if not dumps:
        sys.exit(f"instruction_count: callgrind wrote no dump in {folder}")
    totals = re.search(r"^totals:\s+(\d+)", dumps[-1].read_text(errors="replace"), re.MULTILINE)
    if totals is None:
        sys.exit(f"instruction_count: no totals line in {dumps[-1]}")
    return int(totals.group(1)), int(found.group(1)), int(found.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", choices=["mm", "sma", "both"], default="both")
    ap.add_argument("--trades", type=int, default=100_000, help="synthetic trades (the market maker adds as many quotes)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lib", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from app.numba_cache import configure_numba_cache

    configure_numba_cache()
    if args.child:
        measure_child(args.strategy, args.trades, args.lib)
        return
    strategies = ["mm", "sma"] if args.strategy == "both" else [args.strategy]
    print(f"callgrind, {args.trades:,d} synthetic trades, tree {ROOT}")
    print(f"{'backtest':10s} {'instructions':>15s} {'inputs':>10s} {'fills':>7s} {'instr/input':>12s}")
    with tempfile.TemporaryDirectory(prefix="instruction-count-") as tmp:
        folder = Path(tmp)
        # A fresh Numba cache: which kernels a cache already holds, compiled for which
        # callers, changes the machine code the loop links (by 6% on the market maker).
        os.environ["PIPELINE_TRADER_CACHE"] = str(folder / "numba")
        lib = build_shim(folder)
        for strategy in strategies:
            total, inputs, fills = count(strategy, args.trades, folder, lib)
            print(f"{strategy:10s} {total:15,d} {inputs:10,d} {fills:7,d} {total / inputs:12.1f}")


if __name__ == "__main__":
    main()
