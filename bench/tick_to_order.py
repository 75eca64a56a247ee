"""Tick-to-order latency of the live engine over ZeroMQ IPC, single and multi topology, pinned or not.

Each measurement is a real paper session (``app.live.run_session``): the simulated venue
server plays the synthetic market on wall-clock time at a chosen message rate, the
engine runs the market maker (which re-quotes on most ticks), and the venue answers
its orders. Nothing is mocked: the processes, sockets, codecs and the compiled
pipeline are those of ``python run.py mode=paper``. Printed per run:

* tick-to-order p50 / p99 / p99.9 / max (us): inside the engine, from the moment a
  market-data message is taken from its socket (decoding included) to the moment the
  order it caused is handed to ZeroMQ (``live.runtime.LatencyRecorder``); orders the
  engine sends in reaction to a report or a timer are timed apart ("react p50/p99");
* feed delay p50 / p99 (us): from the venue stamping a row (when it played it) to the
  engine stamping it on receipt: transport, the market-data service's hop (multi) and
  any queueing in the engine. A rate is *sustained* when no gap was detected and this
  delay stays bounded (p99 under ``--max-delay-ms``): beyond that the engine falls behind;
* gaps: sequence gaps the engine's subscribers detected (recovered by replay);
* achieved rate: data rows the engine received per second.

First it prints what this machine makes of the bare path, in a plain loop at 300
frames/s: a ZeroMQ receive and send with nothing between, and with the engine's own
work between (decode, check, step the SMA crossover, which orders on every trade,
encode): the layered way in Python, and the fast path's compiled loop, which reads and
writes the sockets itself (its samples are its own stamps, as in a session); waiting in
poll() or spinning. On a VM a thread woken from sleep runs far slower than a hot one,
and every microsecond of work shows up several times over at the tail: these floors say
what the sessions' figures can be compared with.

Usage::

    python bench/tick_to_order.py                                  # 300 and 3,000 msg/s, both topologies, pin off/on
    python bench/tick_to_order.py --rates 300 --topologies single --pinning off --duration 10
    python bench/tick_to_order.py --find-max --topologies single   # highest rate sustained without gaps
    python bench/tick_to_order.py --override live.uvloop=false     # asyncio's own event loop

Pinning "on" puts the engine alone on the last core and every other process on the
others (``live.cpus``). On this 2-core machine the other processes share one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.numba_cache import configure_numba_cache  # noqa: E402

configure_numba_cache()

import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from app.live import run_session  # noqa: E402
from framework.config import register_configs  # noqa: E402
from framework.events import EventKind  # noqa: E402
from framework.journal import read_journal  # noqa: E402

TRADES_PER_DAY = 200_000
QUOTES_PER_TRADE = 2.0
ROWS_PER_S = TRADES_PER_DAY * (1 + QUOTES_PER_TRADE) / 86_400  # the synthetic market's average pace at speed 1


OVERRIDES: list[str] = []
"""Further Hydra overrides for every session (``--override``)."""


def config(rate: float, topology: str, pinned: bool, duration: float, catalog: Path, spin: float = 0.0):
    n_cores = len(__import__("os").sched_getaffinity(0))
    engine_core, others = [n_cores - 1], list(range(max(1, n_cores - 1)))
    cpus = ([f"live.cpus.engine={engine_core}", f"live.cpus.market_data={others}", f"live.cpus.gateway={others}",
             f"live.cpus.venue={others}"] if pinned else [])
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[
            "mode=paper", "strategy=market_maker", f"live.topology={topology}", f"live.duration_s={duration}",
            f"live.paper.speed={rate / ROWS_PER_S}", "live.paper.max_batch=64", "live.end_linger_s=1",
            f"data.catalog_root={catalog}", f"data.synthetic.trades_per_day={TRADES_PER_DAY}",
            f"data.synthetic.quotes_per_trade={QUOTES_PER_TRADE}", "data.synthetic.days=2",
            "risk.instrument.max_messages_per_s=0", f"live.spin_s={spin}", "progress=false",
            *[c.replace(" ", "") for c in cpus], *OVERRIDES])


def measure(rate: float, topology: str, pinned: bool, duration: float, catalog: Path, out: Path,
            spin: float = 0.0) -> dict:
    """One paper session; its figures."""
    cfg = config(rate, topology, pinned, duration, catalog, spin)
    summaries = run_session(cfg, out)
    engine = summaries["engine"]
    _, events, _ = read_journal(out / "engine" / "journal.bin", torn_tail="drop")
    market = events[(events["kind"] == EventKind.QUOTE) | (events["kind"] == EventKind.TRADE)]
    delay_us = (market["ts_recv"] - market["ts_event"]) / 1e3
    links = engine.get("links", {})
    gaps = sum(links.get(k, {}).get("gaps_detected", 0) for k in ("feed_subscriber", "venue_subscriber"))
    span_s = (market["ts_recv"][-1] - market["ts_recv"][0]) / 1e9 if len(market) > 1 else 0.0
    return {
        "rate": rate, "topology": topology, "pinned": pinned,
        "achieved": len(market) / span_s if span_s else 0.0, "rows": len(market),
        "t2o": engine["tick_to_order"], "react": engine["reaction_to_order"], "gaps": gaps,
        "delay_p50_us": float(np.percentile(delay_us, 50)) if len(delay_us) else float("nan"),
        "delay_p99_us": float(np.percentile(delay_us, 99)) if len(delay_us) else float("nan"),
    }


def _floor_publisher(endpoint: str, n: int, rate: float, go=None) -> None:
    """Publish ``n`` one-trade EVENTS frames at ``rate`` per second (prices that make an SMA trade),
    from when ``go`` is set (if given)."""
    import zmq

    from framework.events import EVENT_DTYPE, EventKind, to_fixed
    from live.wire import MsgType, encode_frame

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.bind(endpoint)
    if go is not None:
        go.wait()
    time.sleep(0.5)  # let the subscriber join
    trade = np.zeros(1, EVENT_DTYPE)
    trade["kind"], trade["size"] = EventKind.TRADE, to_fixed(1)
    for k in range(n):
        trade["price"] = to_fixed(100.0 + k % 2)  # fast=1 and slow=2 cross on every trade
        trade["ts_event"] = time.time_ns()
        sock.send(encode_frame(MsgType.EVENTS, trade, publisher_id=1, epoch=1, sequence=k + 1))
        time.sleep(1 / rate)
    sock.send(b"END")
    sock.close()


def machine_floor(engine_work: Callable[[bytes], bytes] | None, spin: bool, n: int = 3000,
                  rate: float = 300.0) -> tuple[float, float, float]:
    """A frame received on SUB, (``engine_work``: decoded, stepped, its commands encoded) and a
    frame sent on DEALER, in a plain loop: no asyncio, no links, no transport bookkeeping.
    Waiting in poll() or spinning on a non-blocking receive. p50/p99/p99.9 in us."""
    import multiprocessing as mp

    import zmq

    folder = tempfile.mkdtemp(prefix="floor-")
    pub_ep, sink_ep = f"ipc://{folder}/pub", f"ipc://{folder}/sink"
    publisher = mp.get_context("fork").Process(target=_floor_publisher, args=(pub_ep, n, rate))
    publisher.start()  # forked before this process makes a ZeroMQ context of its own
    ctx = zmq.Context()
    sink = ctx.socket(zmq.ROUTER)
    sink.setsockopt(zmq.RCVHWM, 0)  # never read: unbounded, so the sends never block
    sink.bind(sink_ep)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub_ep)
    out = ctx.socket(zmq.DEALER)
    out.setsockopt(zmq.SNDHWM, 0)
    out.connect(sink_ep)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    samples = []
    while True:
        if not spin:
            poller.poll()
        t0 = time.perf_counter_ns()
        try:
            msg = sub.recv(zmq.NOBLOCK)
        except zmq.Again:
            continue
        if msg == b"END":
            break
        out.send(msg if engine_work is None else engine_work(msg))
        samples.append(time.perf_counter_ns() - t0)
    publisher.join()
    ctx.destroy(linger=0)
    us = np.array(samples[len(samples) // 10:]) / 1e3
    return tuple(float(x) for x in np.percentile(us, [50, 99, 99.9]))


def _sma_engine(catalog: Path):
    from app.live_build import build_engine

    cfg = config(300, "single", False, 1, catalog)
    cfg.strategy.name = "sma_crossover"
    cfg.strategy.params = {"instrument": "SYNTH", "fast": 1, "slow": 2, "order_size": 1.0, "allow_short": True}
    # nobody answers the floor's orders: without room for working orders, risk would refuse all but the first few
    cfg.risk.instrument.max_long = cfg.risk.instrument.max_short = 1e6
    return build_engine(cfg, Path(tempfile.mkdtemp(prefix="floor-engine-")))


def layered_work(catalog: Path) -> Callable[[bytes], bytes]:
    """The engine's own work on one frame the layered way: decode, check and step (the SMA
    crossover), encode the commands."""
    from live.engine import Origin
    from live.wire import MsgType, decode_frame, encode_frame

    engine = _sma_engine(catalog)
    sequence = iter(range(1, 1 << 62))

    def work(raw: bytes) -> bytes:
        commands = engine.process(decode_frame(raw).records, Origin.MARKET_DATA, time.time_ns())
        return encode_frame(MsgType.COMMANDS, commands, publisher_id=2, epoch=1, sequence=next(sequence))

    return work


def fast_path_floor(catalog: Path, spin: bool, n: int = 3000, rate: float = 300.0) -> tuple[float, float, float]:
    """The same through ``live.fastpath``: the engine's own subscriber and command sender, and
    the fast path's compiled loop reading one socket and writing the other. Samples are the
    fast path's own stamps (``FastPath.tick_to_order_ns``), as in a session."""
    import multiprocessing as mp

    import zmq

    from live.fastpath import FastPath, Outcome
    from live.transport import CommandSender, Source, Subscriber

    folder = tempfile.mkdtemp(prefix="floor-")
    pub_ep, sink_ep = f"ipc://{folder}/pub", f"ipc://{folder}/sink"
    engine = _sma_engine(catalog)
    go = mp.get_context("fork").Event()
    publisher = mp.get_context("fork").Process(target=_floor_publisher, args=(pub_ep, n, rate, go))
    publisher.start()  # forked before this process makes a ZeroMQ context of its own
    ctx = zmq.Context()
    sink = ctx.socket(zmq.ROUTER)
    sink.setsockopt(zmq.RCVHWM, 0)
    sink.bind(sink_ep)
    nobody = ctx.socket(zmq.ROUTER)  # the replay socket: a floor has no gaps to recover
    nobody.bind(f"ipc://{folder}/replay")
    feed = Subscriber([Source(1, pub_ep, f"ipc://{folder}/replay")], ctx=ctx, name="floor.feed")
    sender = CommandSender(2, sink_ep, ctx=ctx, max_unacked=1 << 30)
    path = FastPath(engine, feed, sender)  # compiled (or loaded) before the first frame comes
    go.set()
    deadline = time.monotonic() + 0.5 + 2 * n / rate + 10
    samples, handled = [], 0
    while handled <= n and time.monotonic() < deadline:  # every frame and the END
        if not spin:
            feed.live_socket.poll(100)
        outcome = path.poll(100_000 if spin else 0)
        if outcome == Outcome.HANDED:  # the first frame starts the stream; END is not a frame
            feed.recv_nowait()
        elif outcome == Outcome.TAKEN and path.sent_orders:
            samples.append(path.tick_to_order_ns)
        handled += outcome != Outcome.IDLE
    publisher.join()
    feed.close()
    sender.socket.close(linger=0)
    ctx.destroy(linger=0)
    us = np.array(samples[len(samples) // 10:]) / 1e3
    return tuple(float(x) for x in np.percentile(us, [50, 99, 99.9]))


def print_floors(catalog: Path) -> None:
    """What the machine makes of a receive and a send, with and without the engine's work."""
    layered = layered_work(catalog)
    for what, floor in (("recv -> send", lambda spin: machine_floor(None, spin)),
                        ("recv -> layered engine -> send", lambda spin: machine_floor(layered, spin)),
                        ("recv -> fast path -> send", lambda spin: fast_path_floor(catalog, spin))):
        for spin in (False, True):
            p50, p99, p999 = floor(spin)
            print(f"floor, plain loop, {what:<31} {'spinning' if spin else 'in poll()':<10}: "
                  f"p50 {p50:6.1f} us, p99 {p99:6.1f} us, p99.9 {p999:6.1f} us", flush=True)


def row(r: dict) -> str:
    t = r["t2o"]
    lat = (f"{t['p50_us']:8.1f} {t['p99_us']:8.1f} {t['p999_us']:8.1f} {t['max_us']:9.1f} {t['count']:8,d}"
           if t.get("count") else f"{'-':>8} {'-':>8} {'-':>8} {'-':>9} {0:8d}")
    react = r["react"]
    react_txt = f"{react['p50_us']:8.1f} {react['p99_us']:8.1f}" if react.get("count") else f"{'-':>8} {'-':>8}"
    return (f"{r['topology']:<7} {'on' if r['pinned'] else 'off':<4} {r['rate']:>8,.0f} {r['achieved']:>9,.0f} "
            f"{lat} {react_txt} {r['delay_p50_us']:9.0f} {r['delay_p99_us']:9.0f} {r['gaps']:5d}")


HEADER = (f"{'topo':<7} {'pin':<4} {'target/s':>8} {'achieved':>9} {'t2o p50':>8} {'p99':>8} {'p99.9':>8} "
          f"{'max':>9} {'orders':>8} {'react p50':>9} {'p99':>8} {'feed p50':>9} {'feed p99':>9} {'gaps':>5}")


def find_max(topology: str, pinned: bool, duration: float, catalog: Path, folder: Path, max_delay_ms: float,
             spin: float) -> None:
    rate, best = 1000.0, 0.0
    while rate <= 200_000:
        r = measure(rate, topology, pinned, duration, catalog, folder / f"max-{topology}-{pinned}-{int(rate)}", spin)
        print(row(r), flush=True)
        sustained = r["gaps"] == 0 and r["delay_p99_us"] < max_delay_ms * 1e3 and r["achieved"] > 0.9 * rate
        if not sustained:
            break
        best = r["achieved"]
        rate *= 1.6
    print(f"highest rate sustained without gaps ({topology}, pinning {'on' if pinned else 'off'}): "
          f"{best:,.0f} msg/s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="300,3000", help="message rates, data rows per second")
    p.add_argument("--topologies", default="single,multi")
    p.add_argument("--pinning", default="off,on")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per session")
    p.add_argument("--find-max", action="store_true", help="raise the rate until gaps or lag appear")
    p.add_argument("--max-delay-ms", type=float, default=5.0, help="feed delay p99 that counts as falling behind")
    p.add_argument("--spin", type=float, default=0.005,
                   help="live.spin_s: seconds the engine keeps polling after each message (0: sleep at once)")
    p.add_argument("--no-floors", action="store_true", help="skip the plain-loop floors")
    p.add_argument("--override", action="append", default=[],
                   help="a Hydra override for every session, e.g. live.uvloop=false (repeatable)")
    args = p.parse_args()
    OVERRIDES.extend(args.override)
    folder = Path(tempfile.mkdtemp(prefix="t2o-"))
    catalog = folder / "catalog"
    print(f"sessions in {folder}; synthetic market at {ROWS_PER_S:.1f} rows/s at speed 1; live.spin_s={args.spin}; "
          f"overrides {args.override or 'none'}",
          flush=True)
    if not args.no_floors:
        print_floors(catalog)
    print(HEADER, flush=True)
    t0 = time.perf_counter()
    results = []
    for topology in args.topologies.split(","):
        for pin in args.pinning.split(","):
            pinned = pin == "on"
            if args.find_max:
                find_max(topology, pinned, args.duration, catalog, folder, args.max_delay_ms, args.spin)
                continue
            for rate in (float(x) for x in args.rates.split(",")):
                r = measure(rate, topology, pinned, args.duration, catalog, folder / f"{topology}-{pin}-{int(rate)}",
                            args.spin)
                results.append(r)
                print(row(r), flush=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    print(f"done in {time.perf_counter() - t0:.0f} s; results in {folder / 'results.json'}")


if __name__ == "__main__":
    main()
