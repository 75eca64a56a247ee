"""The processes of a live session, by role, each runnable on its own.

    python -m app.nodes ROLE --config RUN/config.yaml --endpoints RUN/endpoints.json --out RUN/ROLE

Roles:

* ``engine``: the pipeline (``live.runtime.Runtime``), its journal, and its links: in
  the single topology straight to the venue (the simulated venue server, or Binance's
  WebSocket feed and order entry in this very process), in the multi topology to the
  market-data service and the gateway;
* ``market_data``: the market-data service of the multi topology: reads the venue's
  feed and republishes it (sequenced, replayable) for the engine and any monitor;
* ``gateway``: the venue gateway of the multi topology: takes the engine's commands,
  forwards them to the venue, republishes the venue's reports;
* ``venue``: the simulated venue server (``app.venue_server``), lockstep or paper.

Each role pins itself to the cores ``live.cpus.<role>`` names, stops cleanly on SIGTERM
or SIGINT, writes ``<role>.json`` with its counters into its folder, and exits 0 (or 1
with the error logged). The supervisor (``app.live``) starts them and stops them in
order; systemd can run them the same way, one unit per role.
"""

from __future__ import annotations

import os

if __name__ == "__main__" and "NUMBA_CACHE_DIR" not in os.environ:  # a child inherits its supervisor's cache
    from app.numba_cache import configure_numba_cache

    configure_numba_cache()

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import structlog
from omegaconf import DictConfig, OmegaConf

from app import event_loop
from app.endpoints import ENGINE_SENDER, GATEWAY_REPORTS, GATEWAY_SENDER, MARKET_DATA_SERVICE, Endpoints
from framework.events import EVENT_DTYPE, EventKind, concat_events
from live.deadline import within

log = structlog.get_logger("app.nodes")

ROLES = ("engine", "market_data", "gateway", "venue")

CPUS_ENV = "PIPELINE_TRADER_CPUS"
"""The cores the supervisor could run on before it pinned anything, for its children."""


def session_cpus() -> None:
    """Start from the cores the supervisor had before it pinned itself (``CPUS_ENV``).

    A child inherits its parent's affinity: in the single topology the supervisor is the
    engine, pinned to the engine's cores before it starts the venue, so an unpinned
    venue (or one whose engine's I/O thread should move to "the other cores") would
    otherwise share the core the engine was given alone."""
    cpus = os.environ.get(CPUS_ENV)
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def pin(cores: list[int], role: str) -> list[int]:
    """Pin this process to ``cores`` (empty: leave it); return the cores it may run on.

    The engine's ZeroMQ I/O thread, which does the actual socket writes, goes to the
    other cores: on the engine's core it would take turns with the thread it serves,
    and every send would wait for a context switch. The other processes keep theirs, so
    that nothing of theirs lands on the engine's core."""
    if cores:
        import zmq

        others = sorted(set(os.sched_getaffinity(0)) - set(cores))
        try:
            os.sched_setaffinity(0, set(cores))
        except (OSError, ValueError) as e:
            raise ValueError(f"live.cpus.{role}: cannot pin to cores {cores}: {e}") from None
        if role == "engine":
            ctx = zmq.Context.instance()  # before any socket: its I/O thread starts with the first
            for core in others:
                ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, core)
    return sorted(os.sched_getaffinity(0))


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_plain))
    tmp.replace(path)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def is_lockstep(cfg: DictConfig) -> bool:
    return cfg.mode.name == "lockstep"


def uses_sim_venue(cfg: DictConfig) -> bool:
    return str(cfg.live.venue.name if hasattr(cfg.live.venue, "name") else cfg.live.venue) == "sim"


def is_multi(cfg: DictConfig) -> bool:
    return str(cfg.live.topology.name if hasattr(cfg.live.topology, "name") else cfg.live.topology) == "multi"


# -- the roles --------------------------------------------------------------------------------------


class EngineNode:
    """The engine with its links, built (and compiled) before anything trades."""

    def __init__(self, cfg: DictConfig, ep: Endpoints, out_dir: Path) -> None:
        from app.live_build import build_engine
        from live.links import ZmqFeed, ZmqVenue
        from live.runtime import Runtime, RuntimeConfig

        engine = build_engine(cfg, out_dir)
        spin = float(cfg.live.spin_s)
        if is_multi(cfg):
            self.feed = ZmqFeed([ep.market_data_service()], name="engine.feed", spin_s=spin)
            self.venue = ZmqVenue(ENGINE_SENDER, ep.gw_commands, [ep.gateway_reports()], name="engine.venue",
                                  spin_s=spin)
        elif uses_sim_venue(cfg):
            self.feed = ZmqFeed([ep.sim_market_data()], name="engine.feed", spin_s=spin)
            self.venue = ZmqVenue(ENGINE_SENDER, ep.sim_commands, [ep.sim_reports_source()], name="engine.venue",
                                  spin_s=spin)
        else:
            from app.live_build import venue_execution, venue_feed

            self.feed, self.venue = venue_feed(cfg), venue_execution(cfg)
        live = cfg.live
        self.runtime = Runtime(engine, self.feed, self.venue, RuntimeConfig(
            lockstep=is_lockstep(cfg), duration_s=live.duration_s, journal_flush_s=live.journal_flush_s,
            journal_sync_s=live.journal_sync_s, shutdown_timeout_s=live.shutdown_timeout_s,
            fast_path=bool(live.fast_path),
        ))

    async def run(self, stop: asyncio.Event) -> dict:
        """Trade until stopped (or the session ends); return the summary."""
        try:
            summary = await self.runtime.run(stop)
        finally:
            await close_link(self.feed)
            await close_link(self.venue)
        summary["links"] = _link_counters(self.feed, self.venue)
        return summary


async def close_link(link: object) -> None:
    """Close a feed or venue link, sync or async; a failure to close is logged, not raised."""
    closing = getattr(link, "close", None)
    if closing is None:
        return
    try:
        result = closing()
        if asyncio.iscoroutine(result):
            await result
    except Exception:  # noqa: BLE001 - closing must not hide what stopped the session
        log.exception("closing a link failed", link=type(link).__name__)


def _link_counters(feed: object, venue: object) -> dict:
    out = {}
    for name, link in (("feed", feed), ("venue", venue)):
        sub = getattr(link, "subscriber", None)
        if sub is not None:
            out[f"{name}_subscriber"] = sub.counters.as_dict()
            out[f"{name}_rejects"] = dict(sub.rejects.counts)
        sender = getattr(link, "sender", None)
        if sender is not None:
            out[f"{name}_sender"] = sender.counters.as_dict()
        stats = getattr(link, "stats", None)
        if callable(stats):
            out[f"{name}_stats"] = stats()
    return out


class TopOfBook:
    """The latest quote, trade and bar of every instrument and venue: the market-data
    service's snapshot for a subscriber that lost more than the replay ring holds."""

    KINDS = (EventKind.QUOTE, EventKind.TRADE, EventKind.BAR)

    def __init__(self) -> None:
        self._latest: dict[tuple[int, int, int], np.ndarray] = {}

    def update(self, records: np.ndarray) -> None:
        """Remember the last record of each (instrument, venue, kind) in ``records``."""
        for i in range(len(records)):
            kind = int(records["kind"][i])
            if kind in self.KINDS:
                self._latest[(int(records["instrument_id"][i]), int(records["venue_id"][i]), kind)] = records[i:i + 1]

    def snapshot(self) -> np.ndarray:
        """The remembered records, in a fixed order (by instrument, venue, kind)."""
        parts = [self._latest[k] for k in sorted(self._latest)]
        return concat_events(parts) if parts else np.zeros(0, EVENT_DTYPE)


async def run_market_data(cfg: DictConfig, ep: Endpoints, stop: asyncio.Event, ready: Callable[[], None]) -> dict:
    """The market-data service: the venue's feed in, one sequenced stream out."""
    from live.links import ZmqFeed
    from live.transport import Publisher

    if uses_sim_venue(cfg):
        upstream = ZmqFeed([ep.sim_market_data()], name="md.upstream")
    else:
        from app.live_build import venue_feed

        upstream = venue_feed(cfg)
    top = TopOfBook()
    async with Publisher(MARKET_DATA_SERVICE, ep.md, ep.md_replay, heartbeat_interval=cfg.live.heartbeat_s,
                         snapshot=top.snapshot, name="md") as pub:
        ready()

        def relay(records: np.ndarray, _t: int) -> None:
            top.update(records)
            pub.publish(records)

        ended = await _until_done_or_stopped(upstream.run(relay), stop)
        if ended:
            pub.end()
            await linger(stop, cfg.live.end_linger_s)
        counters = pub.counters.as_dict()
    await close_link(upstream)
    return {"published": counters, "upstream": _link_counters(upstream, None)}


async def run_gateway(cfg: DictConfig, ep: Endpoints, stop: asyncio.Event, ready: Callable[[], None]) -> dict:
    """The venue gateway: commands from the engine to the venue, reports back, one frame for one."""
    from live.links import ZmqVenue
    from live.transport import CommandReceiver, Publisher

    if uses_sim_venue(cfg):
        venue = ZmqVenue(GATEWAY_SENDER, ep.sim_commands, [ep.sim_reports_source()], name="gw.venue")
    else:
        from app.live_build import venue_execution

        venue = venue_execution(cfg)
    async with Publisher(GATEWAY_REPORTS, ep.gw_reports, ep.gw_reports_replay, heartbeat_interval=cfg.live.heartbeat_s,
                         name="gw.reports") as pub:
        with CommandReceiver(ep.gw_commands, name="gw.commands") as commands:

            async def forward() -> None:
                while True:
                    frame = commands.recv_nowait()
                    if frame is None:
                        await commands.wait()
                    else:
                        venue.send(frame.records)

            forwarder = asyncio.create_task(forward())
            ready()
            try:
                ended = await _until_done_or_stopped(venue.run(lambda records, _t: pub.publish(records)), stop)
                if ended:
                    pub.end()
                    await linger(stop, cfg.live.end_linger_s)
                else:  # stopping: what the engine sent last (its cancels) must still reach the venue
                    await _drain(commands, venue)
            finally:
                forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forwarder
            received = commands.counters.as_dict()
        published = pub.counters.as_dict()
    flushing = getattr(venue, "flush", None)
    if flushing is not None:
        await flushing(2.0)
    summary = {"commands": received, "reports": published, "venue": _link_counters(None, venue)}
    await close_link(venue)
    return summary


async def _drain(commands, venue, seconds: float = 1.0) -> None:
    """Forward commands still arriving for ``seconds`` (the engine's last cancels)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        frame = commands.recv_nowait()
        if frame is None:
            await commands.wait(deadline - loop.time())
            continue
        venue.send(frame.records)


async def run_venue(cfg: DictConfig, ep: Endpoints, out_dir: Path, stop: asyncio.Event,
                    ready: Callable[[], None]) -> dict:
    """The simulated venue server, lockstep or paper."""
    if is_lockstep(cfg):
        from app.venue_server import serve_lockstep

        return await serve_lockstep(cfg, ep, out_dir, stop, ready)
    from app.venue_server import serve_paper

    return await serve_paper(cfg, ep, out_dir, stop, ready)


async def _until_done_or_stopped(work, stop: asyncio.Event) -> bool:
    """Run ``work`` until it returns (True) or ``stop`` is set (False, and it is cancelled)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        task.result()  # raises what made it fail
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def linger(stop: asyncio.Event, seconds: float) -> None:
    """Wait until ``stop`` is set or ``seconds`` pass (a finished stream keeps serving replays)."""
    with contextlib.suppress(TimeoutError):
        await within(stop.wait(), seconds)


# -- running one role -------------------------------------------------------------------------------


def mark_ready(out_dir: Path, role: str) -> None:
    """Tell the supervisor this process is ready (bound, connected, compiled)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{role}.ready").touch()


async def run_role(role: str, cfg: DictConfig, ep: Endpoints, out_dir: Path, stop: asyncio.Event) -> dict:
    """Run ``role`` until it is done or ``stop`` is set; return its summary."""
    if role == "engine":
        node = EngineNode(cfg, ep, out_dir)
        mark_ready(out_dir, role)
        return await node.run(stop)
    def ready() -> None:
        mark_ready(out_dir, role)

    if role == "market_data":
        return await run_market_data(cfg, ep, stop, ready)
    if role == "gateway":
        return await run_gateway(cfg, ep, stop, ready)
    if role == "venue":
        return await run_venue(cfg, ep, out_dir, stop, ready)
    raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")


async def _main(role: str, cfg: DictConfig, ep: Endpoints, out_dir: Path) -> dict:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await run_role(role, cfg, ep, out_dir, stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point of one process of a session (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m app.nodes", description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--config", required=True, help="the session's resolved config.yaml")
    parser.add_argument("--endpoints", required=True, help="the session's endpoints.json")
    parser.add_argument("--out", required=True, help="this process's output folder")
    args = parser.parse_args(argv)
    from framework.config import RunConfig

    cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.load(args.config))  # typed, as run.py has it
    ep = Endpoints(**json.loads(Path(args.endpoints).read_text()))
    out_dir = Path(args.out)
    session_cpus()
    cores = pin(list(cfg.live.cpus[args.role]), args.role)
    try:
        summary = event_loop.run(_main(args.role, cfg, ep, out_dir),
                                 event_loop.wants_uvloop(args.role, bool(cfg.live.uvloop)))
    except Exception:
        log.exception("node failed", role=args.role)
        return 1
    summary["cpus"] = cores
    write_json(out_dir / f"{args.role}.json", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
