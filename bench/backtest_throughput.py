"""Backtest throughput: events per second of the compiled loop, end to end, memory and compile time.

Runs the SMA crossover on synthetic trades (1M and 10M by default) and the market maker
on synthetic quotes and trades, all through the public ``sim.backtest.Backtest`` with the
app's default simulator (constant latency: feed 0.5 ms, orders and reports 1 ms; or
``--latency random``), and prints one table:

* loop ev/s    pipeline inputs (data rows, reports, timers) per second inside the
               compiled loop (``BacktestResult.loop_seconds``);
* e2e ev/s     the same per second of ``Backtest.run`` (the Python driver feeding
               chunks and draining outputs), data generation excluded;
* vs bare      loop time per trade of a minimal ``@njit`` loop with the same SMA logic
               over the same prices (no pipeline, no exchange), divided by the
               pipeline's: 100% would mean the pipeline costs nothing; the two are
               timed in turns, fastest of each (``BareReference``);
* peak RSS     of a fresh process running only that backtest, streaming the data in
               chunks, so it shows the memory a run needs (it follows the chunk size,
               not the length of the history); ``VmHWM``, which unlike ``ru_maxrss`` does
               not start from the parent's size;
* first result seconds from process start to the first backtest result (10k trades of
               a NumPy random walk, so that only the pipeline compiles), with an empty
               Numba cache (cold: everything compiles) and with a populated one (warm).

Usage::

    python bench/backtest_throughput.py                 # everything (a few minutes)
    python bench/backtest_throughput.py --quick         # 1M trades only, no subprocesses
    python bench/backtest_throughput.py --trades 1000000 --chunk 250000 --repeat 5
    python bench/backtest_throughput.py --quick --latency random --journal   # hash every run

This is a script, not a test: numbers depend on the machine and on what else runs on it
(the best of ``--repeat`` runs is shown).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

T_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.numba_cache import configure_numba_cache  # noqa: E402

configure_numba_cache()  # as run.py does: a cache keyed by the sources, so never stale

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from framework.events import EVENT_DTYPE, concat_events, to_fixed  # noqa: E402

DAY_TRADES = 250_000
"""Trades per synthetic day: the unit data is generated in, whatever the chunk size."""
STRATEGIES = ("sma", "mm")


# --------------------------------------------------------------------------- data


def _synthetic_spec(trades_per_day: int, days: int, quotes_per_trade: float):
    from framework.data.synthetic import SyntheticSpec

    return SyntheticSpec(days=days, trades_per_day=trades_per_day, quotes_per_trade=quotes_per_trade, seed=7)


def _day_events(spec, day: int, with_quotes: bool) -> np.ndarray:
    """One synthetic day as EVENT_DTYPE rows in time order (trades, or quotes and trades)."""
    from framework.data.synthetic import generate_day

    d = generate_day(spec, day)
    trades = d["trade"].view(EVENT_DTYPE)
    if not with_quotes:
        return trades
    rows = concat_events([d["quote"].view(EVENT_DTYPE), trades])
    return rows[np.argsort(rows["ts_event"], kind="stable")]


class Feed:
    """Stream ``n_trades`` synthetic trades (with quotes for the market maker) in chunks of
    ``chunk`` rows, generating one day at a time so memory stays bounded; records how long
    generation took so that it can be left out of the end-to-end time."""

    def __init__(self, n_trades: int, chunk: int, with_quotes: bool = False, quotes_per_trade: float = 1.0):
        self.days = max(1, -(-n_trades // DAY_TRADES))
        per_day = min(n_trades, DAY_TRADES)
        self.spec = _synthetic_spec(per_day, self.days, quotes_per_trade if with_quotes else 0.001)
        self.chunk = chunk
        self.with_quotes = with_quotes
        self.gen_seconds = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        buf = np.zeros(0, EVENT_DTYPE)
        for day in range(self.days):
            t0 = time.perf_counter()
            rows = _day_events(self.spec, day, self.with_quotes)
            buf = concat_events([buf, rows]) if len(buf) else rows
            out = []
            while len(buf) >= self.chunk:
                out.append(buf[: self.chunk])
                buf = buf[self.chunk :]
            self.gen_seconds += time.perf_counter() - t0
            yield from out
        if len(buf):
            yield buf


def walk_trades(n_trades: int) -> np.ndarray:
    """A plain NumPy random walk of trades (one per millisecond on average, 1-cent ticks)."""
    rng = np.random.default_rng(7)
    ev = np.zeros(n_trades, EVENT_DTYPE)
    ev["kind"] = 1  # EventKind.TRADE
    ev["ts_event"] = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 2_000_000, n_trades))
    ev["price"] = to_fixed(np.round(100 + np.cumsum(rng.standard_normal(n_trades)) * 0.01, 2))
    ev["size"] = to_fixed(rng.integers(1, 10, n_trades))
    return ev


def trade_prices(n_trades: int) -> np.ndarray:
    """The trade prices of the SMA data set, for the bare reference loop."""
    return np.concatenate([c["price"] for c in Feed(n_trades, DAY_TRADES)])


# --------------------------------------------------------------------------- backtests


OPTIONS = {"latency": "constant", "journal": False}
"""Set from the command line; children get the same flags."""


def sim_params() -> np.ndarray:
    """conf/sim/latency/{constant,random}.yaml, default fees, fill at touch, 1-minute equity samples."""
    from sim.models import SIM_PARAMS_DTYPE, LatencyModel

    prm = np.zeros(1, SIM_PARAMS_DTYPE)
    if OPTIONS["latency"] == "random":
        prm["latency_model"] = LatencyModel.RANDOM
        prm["seed"] = 1
        prm["feed_ns"], prm["order_ns"], prm["response_ns"] = 300_000, 700_000, 700_000
        prm["feed_jitter_ns"], prm["order_jitter_ns"], prm["response_jitter_ns"] = 200_000.0, 300_000.0, 300_000.0
    else:
        prm["feed_ns"], prm["order_ns"], prm["response_ns"] = 500_000, 1_000_000, 1_000_000
    prm["maker_fee_rate"], prm["taker_fee_rate"] = -0.0001, 0.0004
    prm["equity_interval_ns"] = 60_000_000_000
    return prm


def build(strategy: str):
    """A fresh Backtest for ``strategy`` on instrument 0, as app/backtest.py wires one."""
    from framework.journal import JournalHasher
    from framework.state import PipelineSpec, allocate
    from sim.backtest import Backtest, Strategy
    from sim.exchange import allocate_exchange
    from sim.models import latency_streams
    from sim.loop import allocate_loop
    from strategies import market_maker, sma_crossover

    module = {"sma": sma_crossover, "mm": market_maker}[strategy]
    sparams, sstate = module.make(module.Params(instrument="SYN"), {"SYN": 0})
    spec = PipelineSpec(max_order_size=(to_fixed(10),), max_position=(to_fixed(10),))
    prm = sim_params()
    exchange = allocate_exchange(1, spec.order_capacity, prm, latency_streams(int(prm["seed"][0])))
    journal = JournalHasher() if OPTIONS["journal"] else None
    loop = allocate_loop(spec.order_capacity, 64, journal=journal is not None)
    return Backtest(allocate(spec), exchange, loop, Strategy(module.on_event, sparams, sstate), journal)


def run_backtest(strategy: str, n_trades: int, chunk: int, chunks: list[np.ndarray] | None = None) -> dict:
    """Run one backtest; return its counts, times and journal hash."""
    feed = Feed(n_trades, chunk, with_quotes=strategy == "mm")
    t0 = time.perf_counter()
    result = build(strategy).run(chunks if chunks is not None else feed)
    total = time.perf_counter() - t0
    gen = 0.0 if chunks is not None else feed.gen_seconds
    return {
        "rows": result.n_events,
        "inputs": result.n_inputs,
        "fills": len(result.fills),
        "loop_s": result.loop_seconds,
        "e2e_s": total - gen,
        "hash": result.journal_hash or "-",
        "final_equity": float(result.equity["equity"][-1]) if len(result.equity) else 0.0,
    }


def best_of(repeat: int, fn, between: Callable[[], None] | None = None) -> dict:
    """The fastest of ``repeat`` runs of ``fn`` (and the fastest end to end), checking that
    all gave the same result; ``between`` runs after each."""
    runs = []
    for _ in range(repeat):
        runs.append(fn())
        if between is not None:
            between()
    best = min(runs, key=lambda r: r["loop_s"])
    best["e2e_s"] = min(r["e2e_s"] for r in runs)
    if len({(r["hash"], r["final_equity"], r["fills"]) for r in runs}) != 1:
        raise RuntimeError("identical runs gave different results")
    return best


# --------------------------------------------------------------------------- bare reference


@njit(cache=True)
def bare_sma(prices: np.ndarray, fast: int, slow: int) -> int:
    """The SMA crossover with nothing around it: integer ring-buffer sums, a flip on each
    crossing (the same arithmetic as ``strategies.sma_crossover``). Returns the number of
    crossings so the work cannot be optimized away."""
    window = np.zeros(slow, np.int64)
    sum_fast = 0
    sum_slow = 0
    signal = 0
    crossings = 0
    head = 0
    for n in range(prices.shape[0]):
        price = prices[n]
        fast_slot = head - fast if head >= fast else head - fast + slow
        leaving_fast = window[fast_slot] if n >= fast else 0
        leaving_slow = window[head] if n >= slow else 0
        window[head] = price
        sum_fast += price - leaving_fast
        sum_slow += price - leaving_slow
        head = head + 1 if head + 1 < slow else 0
        if n + 1 < slow:
            continue
        fast_avg = sum_fast / fast
        slow_avg = sum_slow / slow
        new = signal
        if fast_avg > slow_avg:
            new = 1
        elif fast_avg < slow_avg:
            new = -1
        if new != signal:
            signal = new
            crossings += 1
    return crossings


class BareReference:
    """The bare loop's fastest time over ``prices``, timed in turns with the pipeline.

    ``take_turn`` runs between the pipeline's runs (``best_of``'s ``between``), four bare runs
    each time, about as long as one pipeline run: a slow spell of the host then hits both
    sides of the ratio. Timed after all the pipeline's runs, the bare loop's few
    milliseconds took whatever the host did in them (3.1 or 4.9 ns per trade, minutes
    apart)."""

    RUNS_PER_TURN = 4

    def __init__(self, prices: np.ndarray) -> None:
        from strategies.sma_crossover import Params

        self.prices = prices
        self.params = Params()
        self.seconds = float("inf")
        bare_sma(prices[:1000], self.params.fast, self.params.slow)

    def take_turn(self) -> None:
        for _ in range(self.RUNS_PER_TURN):
            t0 = time.perf_counter()
            bare_sma(self.prices, self.params.fast, self.params.slow)
            self.seconds = min(self.seconds, time.perf_counter() - t0)


# --------------------------------------------------------------------------- subprocesses


def peak_rss_mb() -> float:
    """This process's peak resident memory: ``VmHWM`` where Linux has it (it starts afresh
    at exec), else ``ru_maxrss`` (which keeps the parent's peak at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, strategy: str, n_trades: int, chunk: int) -> dict:
    """What a fresh process measures: the time to its first result, and its peak RSS."""
    if mode == "first":
        out = run_backtest(strategy, n_trades, chunk, [walk_trades(n_trades)])
        out["first_result_s"] = time.perf_counter() - T_START
    else:
        out = run_backtest(strategy, n_trades, chunk)
    out["maxrss_mb"] = peak_rss_mb()
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def in_subprocess(mode: str, strategy: str, n_trades: int, chunk: int, cache_dir: str | None) -> dict:
    env = dict(os.environ)
    if cache_dir is not None:
        env["PIPELINE_TRADER_CACHE"] = cache_dir
    cmd = [sys.executable, __file__, "--child", mode, "--strategy", strategy, "--trades", str(n_trades),
           "--chunk", str(chunk), "--latency", OPTIONS["latency"]] + (["--journal"] if OPTIONS["journal"] else [])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {cmd} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- table


def fmt_rate(n: float, seconds: float) -> str:
    return f"{n / seconds / 1e6:7.1f}M" if seconds > 0 else "      -"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trades", type=int, nargs="+", default=[1_000_000, 10_000_000], help="SMA data sizes")
    ap.add_argument("--mm-trades", type=int, default=1_000_000, help="market maker: trades (plus as many quotes)")
    ap.add_argument("--chunk", type=int, default=1_000_000, help="rows per chunk fed to the backtest")
    ap.add_argument("--rss-chunks", type=int, nargs=2, default=[250_000, 2_000_000],
                    help="two chunk sizes for the peak-RSS runs on the largest SMA size")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best shown)")
    ap.add_argument("--latency", choices=["constant", "random"], default="constant", help="simulator latency model")
    ap.add_argument("--journal", action="store_true", help="hash every input and command (as journal=true does)")
    ap.add_argument("--quick", action="store_true", help="1M trades only; skip RSS and compile-time subprocesses")
    ap.add_argument("--child", choices=["first", "rss"], help=argparse.SUPPRESS)
    ap.add_argument("--strategy", choices=STRATEGIES, default="sma", help=argparse.SUPPRESS)
    args = ap.parse_args()
    OPTIONS.update(latency=args.latency, journal=args.journal)

    if args.child:
        print(json.dumps(child(args.child, args.strategy, args.trades[0], args.chunk)))
        return
    if args.quick:
        args.trades = [1_000_000]

    print(f"latency {args.latency}, journal {'on' if args.journal else 'off'}, chunk {args.chunk:,d} rows, "
          f"best of {args.repeat}; numba cache: {os.environ.get('NUMBA_CACHE_DIR')}")
    fresh: list[tuple[str, dict]] = []
    if not args.quick:
        # Fresh processes first, while this one is small: a child's ru_maxrss starts from the
        # parent's size at fork. They share one temporary cache: cold, then warm.
        big = max(args.trades)
        small, few = min(args.rss_chunks), min(args.trades)
        with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
            for label in ("cold: empty cache", "warm: cache populated"):
                fresh.append((f"first result (sma, 10k walk), {label}",
                              in_subprocess("first", "sma", 10_000, 10_000, cache)))
            for chunk in args.rss_chunks:
                fresh.append((f"sma {big / 1e6:g}M trades, chunk {chunk:,d}",
                              in_subprocess("rss", "sma", big, chunk, cache)))
            if few < big:
                fresh.append((f"sma {few / 1e6:g}M trades, chunk {small:,d}",
                              in_subprocess("rss", "sma", few, small, cache)))

    rows: list[tuple] = []
    warm = run_backtest("sma", 10_000, 10_000)  # compile (or load) before timing
    assert warm["rows"] == 10_000
    for n in args.trades:
        chunks = list(Feed(n, args.chunk)) if n <= 2_000_000 else None  # larger: stream while generating
        bare_ref = BareReference(trade_prices(n))
        r = best_of(args.repeat, lambda: run_backtest("sma", n, args.chunk, chunks), between=bare_ref.take_turn)
        bare = bare_ref.seconds
        ratio = (bare / r["rows"]) / (r["loop_s"] / r["rows"])
        rows.append((f"sma  {n / 1e6:g}M trades", r, f"{100 * ratio:5.1f}%", f"{1e9 * bare / n:5.2f}"))
    run_backtest("mm", 10_000, 10_000)
    mm_chunks = list(Feed(args.mm_trades, args.chunk, with_quotes=True))
    r = best_of(args.repeat, lambda: run_backtest("mm", args.mm_trades, args.chunk, mm_chunks))
    rows.append((f"mm   {args.mm_trades / 1e6:g}M trades + quotes", r, "     -", "    -"))

    print()
    print(f"{'backtest':28s} {'rows':>10s} {'inputs':>10s} {'fills':>7s} {'ns/input':>9s} {'loop ev/s':>10s} "
          f"{'e2e ev/s':>9s} {'vs bare':>8s} {'bare ns':>8s} {'final equity':>14s}  journal hash")
    for name, r, ratio, bare_ns in rows:
        print(f"{name:28s} {r['rows']:10,d} {r['inputs']:10,d} {r['fills']:7,d} "
              f"{1e9 * r['loop_s'] / r['inputs']:9.2f} {fmt_rate(r['inputs'], r['loop_s']):>10s} "
              f"{fmt_rate(r['inputs'], r['e2e_s']):>9s} {ratio:>8s} {bare_ns:>8s} {r['final_equity']:14.4f}  "
              f"{r['hash'][:16]}")
    if not fresh:
        return
    print()
    print(f"{'fresh process':46s} {'peak RSS':>9s} {'wall s':>7s} {'first result s':>15s} {'final equity':>14s}  "
          "journal hash")
    for label, r in fresh:
        first = f"{r['first_result_s']:15.1f}" if "first_result_s" in r else f"{'':15s}"
        print(f"{label:46s} {r['maxrss_mb']:7.0f}MB {r['wall_s']:7.1f} {first} {r['final_equity']:14.4f}  "
              f"{r['hash'][:16]}")


if __name__ == "__main__":
    main()
