"""Wall-clock A/B of two checkouts, run side by side so the host's noise hits both alike.

On a shared VM the SMA backtest's time per input moves by 5-60% from one minute to the
next, so two versions timed one after the other differ by whatever the host did in
between. Here each checkout runs in its own process at the same time (one core each),
after a common start signal, for the same wall time: a host that slows down slows both.
Each round swaps which process is started first, and the figure compared is the mean
over the rounds of each side's fastest run.

Both sides run ``bench/backtest_throughput.py``'s 1M-trade SMA backtest (``--strategy mm``:
its market maker on 1M trades and 1M quotes; ``--latency random``: with the seeded random
latency model) from their own checkout (its sources first
on ``sys.path``; the interpreter and packages are this one's). Each process prints the
file its ``sim.loop`` came from, so a mix-up shows.

Usage::

    git worktree add --detach /tmp/base HEAD~1
    python bench/paired_ab.py /tmp/base .              # 2 rounds of 60 s
    python bench/paired_ab.py /tmp/base . --rounds 4 --seconds 30
    python bench/paired_ab.py /tmp/base . --strategy mm   # the market maker
    python bench/paired_ab.py /tmp/base . --latency random

Needs two free cores; compiles each checkout's loop first if its Numba cache is cold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def child(root: Path, seconds: float, strategy: str, latency: str) -> None:
    """Warm up, say so, wait for the start line on stdin, then time backtests for ``seconds``."""
    sys.path[:0] = [str(root / "bench"), str(root)]
    import backtest_throughput as bench

    import sim.loop

    bench.OPTIONS["latency"] = latency
    bench.run_backtest(strategy, 10_000, 10_000)
    chunks = list(bench.Feed(1_000_000, 1_000_000, with_quotes=strategy == "mm"))
    bench.run_backtest(strategy, 1_000_000, 1_000_000, chunks)
    print("ready", flush=True)
    sys.stdin.readline()
    t_go = time.perf_counter()
    ns = []
    while time.perf_counter() - t_go < seconds:
        r = bench.run_backtest(strategy, 1_000_000, 1_000_000, chunks)
        ns.append(1e9 * r["loop_s"] / r["inputs"])
    print(json.dumps({"loop": sim.loop.__file__, "ns": ns}), flush=True)


def start(root: Path, seconds: float, strategy: str, latency: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(root), "--seconds", str(seconds),
                             "--strategy", strategy, "--latency", latency],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"paired_ab: the run in {root} failed before it was ready")
    return proc


def one_round(first: Path, second: Path, seconds: float, strategy: str, latency: str) -> dict[Path, list[float]]:
    procs = {first: start(first, seconds, strategy, latency)}
    try:
        procs[second] = start(second, seconds, strategy, latency)
    except RuntimeError:
        procs[first].kill()
        raise
    out = {}
    try:
        for proc in procs.values():
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for root, proc in procs.items():
            line, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"paired_ab: the run in {root} failed (exit {proc.returncode})")
            result = json.loads(line.strip().splitlines()[-1])
            print(f"  {str(root):40s} {len(result['ns']):3d} runs  fastest {min(result['ns']):6.2f} ns/input  "
                  f"median {statistics.median(result['ns']):6.2f}   ({result['loop']})")
            out[root] = result["ns"]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()  # its partner failed: its figures alone compare nothing
                proc.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, nargs="?", help="checkout A (the baseline)")
    ap.add_argument("b", type=Path, nargs="?", help="checkout B")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; each swaps which side starts first")
    ap.add_argument("--seconds", type=float, default=60.0, help="timed seconds per side and round")
    ap.add_argument("--strategy", choices=["sma", "mm"], default="sma", help="the backtest timed")
    ap.add_argument("--latency", choices=["constant", "random"], default="constant", help="simulator latency model")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child.resolve(), args.seconds, args.strategy, args.latency)
        return
    if args.a is None or args.b is None:
        ap.error("give two checkouts, A and B")
    a, b = args.a.resolve(), args.b.resolve()
    for root in (a, b):
        if not (root / "sim" / "loop.py").is_file():
            ap.error(f"{root} is not a checkout of this project (no sim/loop.py)")
    fastest: dict[Path, list[float]] = {a: [], b: []}
    for k in range(args.rounds):
        first, second = (a, b) if k % 2 == 0 else (b, a)
        print(f"round {k + 1}: {first.name} started first")
        for root, ns in one_round(first, second, args.seconds, args.strategy, args.latency).items():
            fastest[root].append(min(ns))
    mean_a, mean_b = statistics.mean(fastest[a]), statistics.mean(fastest[b])
    label = "SMA 1M" if args.strategy == "sma" else "market maker 1M + 1M"
    print(f"\n{label}, {args.latency} latency, fastest run per round, mean over {args.rounds} rounds: "
          f"A {mean_a:.2f} ns/input, B {mean_b:.2f} ns/input, B/A {mean_b / mean_a:.3f}")


if __name__ == "__main__":
    main()
