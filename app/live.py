"""``mode=lockstep``, ``mode=paper`` and ``mode=live``: start a live session's processes and stop them in order.

    python run.py mode=lockstep [live.topology=multi] [strategy=... data=...]
    python run.py mode=paper live.duration_s=60 [live.paper.speed=10]
    python run.py mode=live live.binance.symbols=[BTCUSDT]          # Binance's testnet by default

The session's processes (``app.nodes``): the simulated venue server (paper and
lockstep), and either one engine process (``live.topology=single``; in this very
process) or a market-data service, an engine and a venue gateway (``multi``), joined
by ZeroMQ over ``live.transport``. Each may be pinned to cores (``live.cpus``).

Stopping: SIGTERM or SIGINT (or ``live.duration_s``, or the end of a lockstep session)
stops the engine first: it cancels its open orders through the kill switch, waits for
the venue to confirm, and closes its journal. Only then are the gateway, the
market-data service and the venue server stopped, so the cancels have somewhere to go.
A process that fails stops the session, and its log is shown.

Everything lands in the run folder: ``config.yaml`` (resolved), ``endpoints.json``, and
one folder per process with its log and summary (``engine/journal.bin``,
``engine/engine.json``, ``venue/fills.parquet`` ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from app import event_loop
from app.endpoints import Endpoints, remove_ipc_files
from app.nodes import CPUS_ENV, EngineNode, is_multi, pin, uses_sim_venue, write_json
from live.deadline import within

LIVE_MODES = ("lockstep", "paper", "live")


class SessionFailed(RuntimeError):
    """A process of the session failed; the message says which and shows its log's tail."""


def endpoints_of(cfg: DictConfig) -> Endpoints:
    """The session's endpoints from ``live.transport``."""
    if str(cfg.live.transport) in ("tcp", "TransportName.tcp"):
        return Endpoints.tcp(str(cfg.live.tcp_host), int(cfg.live.tcp_base_port))
    return Endpoints.ipc(cfg.live.ipc_dir)


def check_mode(cfg: DictConfig) -> None:
    """Refuse a mode and venue that do not go together, before anything starts."""
    mode = cfg.mode.name
    if mode in ("lockstep", "paper") and not uses_sim_venue(cfg):
        raise ValueError(f"live.venue: mode={mode} trades against the simulated venue; set live.venue=sim")
    if mode == "live" and uses_sim_venue(cfg):
        raise ValueError("live.venue: mode=live trades on a real venue (live.venue=binance); "
                         "use mode=paper for the simulated one")


class Supervisor:
    """Start the session's processes, watch them, and stop them in order."""

    def __init__(self, cfg: DictConfig, ep: Endpoints, out_dir: Path) -> None:
        self.cfg = cfg
        self.ep = ep
        self.out_dir = out_dir
        self.children: dict[str, asyncio.subprocess.Process] = {}
        self.stop = asyncio.Event()
        self.cpus = sorted(os.sched_getaffinity(0))
        """The cores this process had before the session: its children start from them, and
        the single topology's engine (this process) gets them back when the session ends."""

    async def run(self) -> dict:
        """Run the session; return every process's summary by role."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            if is_multi(self.cfg):
                for role in ("engine", "gateway", "market_data"):
                    await self._start(role)
                if uses_sim_venue(self.cfg):
                    await self._start("venue")
                await self._watch_engine_child()
            else:
                pin(list(self.cfg.live.cpus.engine), "engine")
                node = EngineNode(self.cfg, self.ep, self.out_dir / "engine")  # compiled before the venue starts
                if uses_sim_venue(self.cfg):
                    await self._start("venue")
                await self._engine_here(node)
        except BaseException:
            await self._stop_children(check=False)  # what went wrong first is what the user sees
            raise
        else:
            await self._stop_children(check=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            os.sched_setaffinity(0, self.cpus)
        return self._summaries()

    async def _start(self, role: str) -> None:
        """Start ``role`` and wait until it says it is ready (or fails)."""
        folder = self.out_dir / role
        folder.mkdir(parents=True, exist_ok=True)
        logfile = open(folder / f"{role}.log", "wb")  # noqa: SIM115 - the child writes it for its whole life
        self.children[role] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.nodes", role, "--config", str(self.out_dir / "config.yaml"),
            "--endpoints", str(self.out_dir / "endpoints.json"), "--out", str(folder),
            stdout=logfile, stderr=logfile, cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, CPUS_ENV: ",".join(map(str, self.cpus))},
        )
        logfile.close()
        ready = folder / f"{role}.ready"
        deadline = time.monotonic() + float(self.cfg.live.start_timeout_s)
        while not ready.exists():
            proc = self.children[role]
            if proc.returncode is not None:
                raise SessionFailed(self._failure_text(role, proc.returncode))
            if time.monotonic() > deadline or self.stop.is_set():
                raise SessionFailed(f"the {role} process was not ready within live.start_timeout_s="
                                    f"{self.cfg.live.start_timeout_s} s" if not self.stop.is_set()
                                    else f"stopped while the {role} process was starting")
            with contextlib.suppress(TimeoutError):
                await within(proc.wait(), 0.05)

    async def _engine_here(self, node: EngineNode) -> None:
        """Single topology: the engine runs in this process, watched for its peers' failure."""
        engine = asyncio.create_task(node.run(self.stop))
        watcher = asyncio.create_task(self._watch_children(exclude=()))
        try:
            done, _ = await asyncio.wait([engine, watcher], return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and not engine.done():
                self.stop.set()
                with contextlib.suppress(Exception):
                    await within(engine, self.cfg.live.shutdown_timeout_s + 5)
                watcher.result()
            summary = await engine
        finally:
            watcher.cancel()
        write_json(self.out_dir / "engine" / "engine.json", summary)

    async def _watch_engine_child(self) -> None:
        engine = self.children["engine"]
        waiter = asyncio.create_task(engine.wait())
        stopper = asyncio.create_task(self.stop.wait())
        watcher = asyncio.create_task(self._watch_children(exclude=("engine",)))
        try:
            done, _ = await asyncio.wait([waiter, stopper, watcher], return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                await self._terminate("engine")
            if watcher in done:
                watcher.result()
        finally:
            for t in (stopper, watcher):
                t.cancel()
        if engine.returncode:
            raise SessionFailed(self._failure_text("engine", engine.returncode))

    async def _watch_children(self, exclude: tuple[str, ...]) -> None:
        """Never return while the session runs; raise when a watched process fails."""
        waits = {asyncio.create_task(p.wait()): role for role, p in self.children.items() if role not in exclude}
        try:
            while waits:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    role = waits.pop(t)
                    code = self.children[role].returncode
                    if code:
                        raise SessionFailed(self._failure_text(role, code))
            await asyncio.Event().wait()
        finally:
            for t in waits:
                t.cancel()

    async def _terminate(self, role: str) -> None:
        """SIGTERM one process and wait for it (SIGKILL if it does not stop in time)."""
        proc = self.children[role]
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await within(proc.wait(), self.cfg.live.shutdown_timeout_s + 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def _stop_children(self, check: bool) -> None:
        """Stop every process, engine first; with ``check``, one that failed (or had to be
        killed) on the way fails the session."""
        for role in ("engine", "gateway", "market_data", "venue"):
            if role in self.children:
                await self._terminate(role)
        failed = [role for role, proc in self.children.items() if proc.returncode]
        if check and failed:
            raise SessionFailed("\n".join(self._failure_text(r, self.children[r].returncode) for r in failed))

    def _failure_text(self, role: str, code: int | None) -> str:
        log = self.out_dir / role / f"{role}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.is_file() else "(no log)"
        return f"the {role} process exited with status {code}; the end of {log}:\n{tail}"

    def _summaries(self) -> dict:
        out = {}
        for role in ("engine", "venue", "gateway", "market_data"):
            path = self.out_dir / role / f"{role}.json"
            if path.is_file():
                out[role] = json.loads(path.read_text())
        return out


def write_session_files(cfg: DictConfig, ep: Endpoints, out_dir: Path) -> None:
    """The resolved config and the endpoints, for the child processes (and the record)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    write_json(out_dir / "endpoints.json", ep.as_dict())


def run_session(cfg: DictConfig, out_dir: Path) -> dict:
    """Run a live session of ``cfg`` (modes lockstep, paper, live) in ``out_dir``; return its summaries."""
    check_mode(cfg)
    if uses_sim_venue(cfg):
        from app.data_source import prepare

        prepare(cfg.data)  # build the catalog once, before several processes look for it
    ep = endpoints_of(cfg)
    write_session_files(cfg, ep, out_dir)
    try:
        use_uvloop = event_loop.wants_uvloop("engine", bool(cfg.live.uvloop))  # the engine, or its supervisor
        return event_loop.run(Supervisor(cfg, ep, out_dir).run(), use_uvloop)
    finally:
        remove_ipc_files(ep)


def run_live(cfg: DictConfig, out_dir: Path) -> dict:
    """The runner of modes lockstep, paper and live: run the session, print what it did."""
    t0 = time.perf_counter()
    summaries = run_session(cfg, out_dir)
    print(format_session(cfg, summaries, time.perf_counter() - t0))
    print(f"session: {out_dir}")
    engine = summaries.get("engine", {})
    return {"journal_hash": engine.get("journal_hash"), "inputs": engine.get("engine", {}).get("inputs", 0),
            "fills": summaries.get("venue", {}).get("fills"), "ended_by": engine.get("ended_by")}


def format_session(cfg: DictConfig, summaries: dict, seconds: float) -> str:
    """A short summary of a session for stdout."""
    engine = summaries.get("engine", {})
    counters = engine.get("engine", {})
    lat = engine.get("tick_to_order", {})
    lines = [f"{cfg.mode.name} session ({cfg.live.topology}, {cfg.strategy.name}): {seconds:.1f} s, "
             f"ended by {engine.get('ended_by', '?')}",
             f"  inputs {counters.get('inputs', 0):,}  rejected "
             f"{sum(v for k, v in counters.items() if k.startswith('rejected_')):,}  open orders at the end "
             f"{engine.get('open_orders', '?')}"]
    if "venue" in summaries:
        lines.append(f"  venue fills {summaries['venue'].get('fills', 0):,}")
    if lat.get("count"):
        lines.append(f"  tick-to-order {lat['count']:,} orders: p50 {lat['p50_us']:.1f} us, "
                     f"p99 {lat['p99_us']:.1f} us, p99.9 {lat['p999_us']:.1f} us")
    lines.append(f"  journal {engine.get('journal_hash') or '-'}")
    return "\n".join(lines)
