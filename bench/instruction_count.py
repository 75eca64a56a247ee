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

With ``--annotate DIR`` it also says where the instructions go: callgrind records the
count of every instruction executed (``--dump-instr=yes``), the measured process
dumps its compiled code (Numba's JIT code lives in anonymous memory, with no symbols
callgrind could name), and ``objdump`` disassembles it. ``DIR/<strategy>.txt`` lists
each instruction executed at least ``--hot`` times per input, with that count, in
address order: the loop over data rows reads as one block, and a change's effect on
it as a diff of two listings. Needs ``objdump`` too (binutils).

Usage::

    python bench/instruction_count.py                     # market maker and SMA, 100k trades
    python bench/instruction_count.py --strategy mm --trades 300000
    python bench/instruction_count.py --strategy sma --annotate /tmp/profile   # and the hot instructions

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
from collections import Counter
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


def dump_jit_code(folder: Path) -> None:
    """Write each anonymous executable mapping of this process (the JIT's code) to
    ``folder/code_<address>.bin``, for ``annotate`` to disassemble."""
    import ctypes

    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if not {"r", "x"} <= set(fields[1]) or len(fields) > 5:
            continue  # not readable code, or backed by a file (callgrind names those itself)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        (folder / f"code_{lo:x}.bin").write_bytes(ctypes.string_at(lo, hi - lo))


def measure_child(strategy: str, n_trades: int, lib: str, code_dir: str | None) -> None:
    """Under callgrind: warm up, then count one backtest; print its input and fill counts
    (and with ``code_dir``, dump the compiled code there)."""
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
    if code_dir is not None:
        dump_jit_code(Path(code_dir))
    print(f"RESULT inputs={result.n_inputs} fills={len(result.fills)}")


def self_cost_by_address(dump: Path) -> Counter[int]:
    """Instructions executed at each address, from a callgrind dump made with
    ``--dump-instr=yes`` (positions ``instr line``, compressed as the format allows:
    ``0x..`` absolute, ``+n``/``-n`` relative to the previous line, ``*`` the same).
    The line after a ``calls=`` line holds a call's inclusive cost, not the address's own."""
    costs: Counter[int] = Counter()
    address = 0
    call_cost = False
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("calls="):
            call_cost = True
            continue
        if not line or line[0] not in "0123456789+-*":
            continue
        fields = line.split()
        position = fields[0]
        if position.startswith("0x"):
            address = int(position, 16)
        elif position[0] in "+-":
            delta = int(position[1:], 0)
            address += delta if position[0] == "+" else -delta
        elif position != "*":
            address = int(position)
        if call_cost:
            call_cost = False
        elif len(fields) > 2:
            costs[address] += int(fields[2])
    return costs


def annotate(folder: Path, costs: Counter[int], inputs: int, hot: float) -> list[str]:
    """Disassemble the dumped code and list the instructions run at least ``hot`` times per
    input: ``per-input-count  address: bytes  instruction``, a header per code region."""
    lines = []
    for region in sorted(folder.glob("code_*.bin"), key=lambda f: int(f.stem[5:], 16)):
        lo = int(region.stem[5:], 16)
        hi = lo + region.stat().st_size
        inside = {a: c for a, c in costs.items() if lo <= a < hi}
        if sum(inside.values()) < hot * inputs:
            continue
        listing = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={lo:#x}",
                                  str(region)], capture_output=True, text=True, check=True).stdout
        hot_lines = []
        for text in listing.splitlines():
            found = re.match(r"\s*([0-9a-f]+):\s", text)
            if found and inside.get(int(found.group(1), 16), 0) >= hot * inputs:
                hot_lines.append(f"{inside[int(found.group(1), 16)] / inputs:6.2f}  {text.strip()}")
        if hot_lines:
            lines.append(f"# code at {lo:#x}: {sum(inside.values()) / inputs:.1f} instructions per input")
            lines.extend(hot_lines)
    return lines


def count(strategy: str, n_trades: int, folder: Path, lib: Path,
          annotate_dir: Path | None = None, hot: float = 0.5) -> tuple[int, int, int]:
    """Run one measurement under callgrind; return (instructions, inputs, fills). With
    ``annotate_dir``, write the hot instructions to ``annotate_dir/<strategy>.txt``.

    A native run of the same code first compiles the loop into the cache (under
    valgrind that alone would take many minutes); the client requests do nothing there."""
    warm = [sys.executable, __file__, "--child", "--strategy", strategy, "--trades", str(WARMUP_ROWS),
            "--lib", str(lib)]
    done = subprocess.run(warm, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"instruction_count: the warm-up run failed:\n{done.stderr[-3000:]}")
    out = folder / f"callgrind.{strategy}"
    code_dir = folder / f"code.{strategy}"
    extra, child = [], []
    if annotate_dir is not None:
        code_dir.mkdir(exist_ok=True)
        extra, child = ["--dump-instr=yes"], ["--code-dir", str(code_dir)]
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no", *extra,
           f"--callgrind-out-file={out}", sys.executable, __file__, "--child", "--strategy", strategy,
           "--trades", str(n_trades), "--lib", str(lib), *child]
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
    inputs = int(found.group(1))
    if annotate_dir is not None:
        annotate_dir.mkdir(parents=True, exist_ok=True)
        listing = annotate(code_dir, self_cost_by_address(dumps[-1]), inputs, hot)
        (annotate_dir / f"{strategy}.txt").write_text("\n".join(listing) + "\n")
    return int(totals.group(1)), inputs, int(found.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", choices=["mm", "sma", "both"], default="both")
    ap.add_argument("--trades", type=int, default=100_000, help="synthetic trades (the market maker adds as many quotes)")
    ap.add_argument("--annotate", type=Path, metavar="DIR",
                    help="also write the hot instructions, with their counts per input, to DIR/<strategy>.txt")
    ap.add_argument("--hot", type=float, default=0.5, help="with --annotate: list instructions run at least this "
                    "many times per input (default 0.5)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lib", help=argparse.SUPPRESS)
    ap.add_argument("--code-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from app.numba_cache import configure_numba_cache

    configure_numba_cache()
    if args.child:
        measure_child(args.strategy, args.trades, args.lib, args.code_dir)
        return
    strategies = ["mm", "sma"] if args.strategy == "both" else [args.strategy]
    if args.annotate is not None and shutil.which("objdump") is None:
        sys.exit("instruction_count: --annotate needs objdump (on Debian: apt-get install binutils)")
    print(f"callgrind, {args.trades:,d} synthetic trades, tree {ROOT}")
    print(f"{'backtest':10s} {'instructions':>15s} {'inputs':>10s} {'fills':>7s} {'instr/input':>12s}")
    with tempfile.TemporaryDirectory(prefix="instruction-count-") as tmp:
        folder = Path(tmp)
        # A fresh Numba cache: which kernels a cache already holds, compiled for which
        # callers, changes the machine code the loop links (by 6% on the market maker).
        os.environ["PIPELINE_TRADER_CACHE"] = str(folder / "numba")
        lib = build_shim(folder)
        for strategy in strategies:
            total, inputs, fills = count(strategy, args.trades, folder, lib, args.annotate, args.hot)
            print(f"{strategy:10s} {total:15,d} {inputs:10,d} {fills:7,d} {total / inputs:12.1f}")
        if args.annotate is not None:
            print(f"hot instructions: {', '.join(str(args.annotate / f'{s}.txt') for s in strategies)}")


if __name__ == "__main__":
    main()
