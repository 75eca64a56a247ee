"""The simulated venue served over ZeroMQ: the simulated exchange as a separate process.

``sim/`` holds the exchange and the loop; ``live/`` the transport. This module joins
them (only ``app/`` may know both) into the server a live runtime trades against:

* lockstep (``serve_lockstep``): the backtest loop itself, with a remote pipeline
  (``sim.backtest.Backtest.run_async``). Each input due at the pipeline (market data
  as the strategy receives it, a report, a timer) is published, market data on the
  market-data stream and everything else on the report stream, and the server waits
  for the engine's answer (one command frame) before simulated time moves on. Same
  merge, same models, same random streams as a backtest: the orders and fills must be
  the backtest's, bit for bit.
* paper (``serve_paper``): the same exchange on wall-clock time: data rows are played
  at their pace (``speed`` times faster), restamped to now; commands are applied as
  they arrive; reports are published as the exchange makes them.

Both write ``fills.parquet`` and ``venue.json`` (counters) into the run folder, end
their streams (END frames) when the data is exhausted, and keep serving replays
until told to stop, so that a subscriber that missed the end can still recover it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import structlog
from omegaconf import DictConfig

from app.backtest import build_backtest, pipeline_spec, sim_params
from app.data_source import prepare
from app.endpoints import SIM_MARKET_DATA, SIM_REPORTS, Endpoints
from app.model_source import strategy_model
from app.nodes import linger
from framework.events import EventKind
from live.deadline import within
from live.transport import CommandReceiver, Publisher
from sim.exchange import allocate_exchange
from sim.models import latency_streams
from sim.paced import PacedVenue

log = structlog.get_logger("app.venue_server")

_MARKET = np.zeros(256, bool)
_MARKET[[EventKind.TRADE, EventKind.QUOTE, EventKind.BOOK_DELTA, EventKind.BOOK_SNAPSHOT, EventKind.BAR]] = True


class LockstepTimeout(RuntimeError):
    """The engine did not answer an input in time: it is gone or stuck."""


async def serve_lockstep(cfg: DictConfig, ep: Endpoints, out_dir: Path, stop: asyncio.Event,
                         ready: Callable[[], None] = lambda: None) -> dict:
    """Run the configured backtest with the pipeline at the other end of ``ep``; return its summary."""
    data = prepare(cfg.data)
    bt = build_backtest(cfg, data, None, strategy_model(cfg), remote=True)
    timeout = float(cfg.live.lockstep_timeout_s)
    heartbeat = float(cfg.live.heartbeat_s)
    async with (
        Publisher(SIM_MARKET_DATA, ep.sim_md, ep.sim_md_replay, heartbeat_interval=heartbeat,
                  name="sim.market_data") as md,
        Publisher(SIM_REPORTS, ep.sim_reports, ep.sim_reports_replay, heartbeat_interval=heartbeat,
                  name="sim.reports") as reports,
    ):
        with CommandReceiver(ep.sim_commands, name="sim.commands") as commands:

            async def remote(due: np.ndarray) -> np.ndarray:
                (md if _MARKET[due["kind"][0]] else reports).publish(due)
                try:
                    frame = await within(commands.recv(), timeout)
                except TimeoutError:
                    raise LockstepTimeout(f"no answer from the engine within live.lockstep_timeout_s={timeout} s "
                                          f"(input kind {int(due['kind'][0])} at ts_recv {int(due['ts_recv'][0])})"
                                          ) from None
                return frame.records

            bt.compile()
            ready()
            t0 = time.perf_counter()
            result = await bt.run_async(data.stream(cfg.chunk_rows), remote)
            md.end()
            reports.end()
            summary = _summary("lockstep", result.fills, time.perf_counter() - t0, md, reports, commands,
                               inputs=result.n_inputs, data_rows=result.n_events)
            _write(out_dir, result.fills, summary)
            log.info("lockstep session done", inputs=result.n_inputs, fills=len(result.fills))
            await linger(stop, float(cfg.live.end_linger_s))
    return summary


async def serve_paper(cfg: DictConfig, ep: Endpoints, out_dir: Path, stop: asyncio.Event,
                      ready: Callable[[], None] = lambda: None) -> dict:
    """Play the configured data on wall-clock time and trade against it until stopped."""
    data = prepare(cfg.data)
    spec = pipeline_spec(cfg, data.instruments)
    prm = sim_params(cfg)
    ex = allocate_exchange(spec.n_instruments, spec.order_capacity, prm,
                           latency_streams(cfg.sim.latency.seed, cfg.sim.faults.seed),
                           report_capacity=cfg.sim.queue_capacity)
    paper = cfg.live.paper
    heartbeat = float(cfg.live.heartbeat_s)
    async with (
        Publisher(SIM_MARKET_DATA, ep.sim_md, ep.sim_md_replay, heartbeat_interval=heartbeat,
                  name="sim.market_data") as md,
        Publisher(SIM_REPORTS, ep.sim_reports, ep.sim_reports_replay, heartbeat_interval=heartbeat,
                  name="sim.reports") as reports,
    ):
        with CommandReceiver(ep.sim_commands, name="sim.commands") as commands:
            venue = PacedVenue(ex, iter(data.stream(cfg.chunk_rows)),
                               speed=float(paper.speed), max_batch=int(paper.max_batch))
            ready()
            venue.start(time.time_ns())
            t0 = time.perf_counter()
            await _trade_on_wall_time(venue, md, reports, commands, stop)
            summary = _summary("paper", venue.fills, time.perf_counter() - t0, md, reports, commands,
                               data_rows=venue.rows_played, commands_applied=venue.commands_applied)
            _write(out_dir, venue.fills, summary)
    return summary


async def _trade_on_wall_time(venue: PacedVenue, md: Publisher, reports: Publisher, commands: CommandReceiver,
                              stop: asyncio.Event, poll_s: float = 0.05) -> None:
    """Publish rows and reports as they fall due, apply commands as they come, until stopped
    (noticed within ``poll_s``). The market-data stream ends with the data; orders are
    served until the end."""
    while not stop.is_set():
        now = time.time_ns()
        rows = venue.play_due(now)
        if len(rows):
            md.publish(rows)
            continue  # more may be due at once
        if venue.exhausted and not md.ended:
            md.end()
        frame = commands.recv_nowait()
        while frame is not None:
            venue.apply(frame.records, time.time_ns())
            frame = commands.recv_nowait()
        due = venue.due_reports(time.time_ns())
        if len(due):
            reports.publish(due)
            continue
        wake = min(venue.next_row_ns(), venue.next_report_ns())
        await commands.wait(min(poll_s, max(0.0, (wake - time.time_ns()) / 1e9)))


def _summary(mode: str, fills: np.ndarray, seconds: float, md: Publisher, reports: Publisher,
             commands: CommandReceiver, **figures: int) -> dict:
    """What the venue did: its figures, fills, and every transport counter."""
    return {"mode": mode, **figures, "fills": len(fills), "seconds": seconds,
            "market_data": md.counters.as_dict(), "reports": reports.counters.as_dict(),
            "command_path": commands.counters.as_dict(), "command_rejects": dict(commands.rejects.counts)}


def _write(out_dir: Path, fills: np.ndarray, summary: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(fills).to_parquet(out_dir / "fills.parquet")
    tmp = out_dir / "venue.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=int))
    tmp.replace(out_dir / "venue.json")
