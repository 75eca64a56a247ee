"""The backtest runner: wire data, strategy, pipeline and simulated exchange from config.

This is the composition root for ``mode=backtest``: the one place that knows the
framework, the simulator, the data catalog and the report together.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from app.data_source import PreparedData, prepare
from app.model_source import model_meta, strategy_model
from app.risk_config import instrument_limits, limits_summary, portfolio_limits
from app.strategy_loader import build_params, load_strategy
from framework.events import records
from framework.journal import JournalHasher, JournalWriter
from framework.report import format_summary, write_report
from framework.state import Counter, PipelineSpec, allocate, events_stepped, reject_reason_names
from sim.backtest import Backtest, BacktestResult, Strategy
from sim.exchange import allocate_exchange
from sim.loop import allocate_loop
from sim.models import SIM_PARAMS_DTYPE, latency_streams

if TYPE_CHECKING:
    from models.registry import LoadedOnnx

PROGRESS_MIN_ROWS = 2_000_000
"""Show a progress bar only for runs long enough to need one."""


def venue_fees(cfg: DictConfig) -> list[tuple[int, float, float]]:
    """``(venue_id, maker_rate, taker_rate)`` of every configured venue (``venue.venues``,
    a null fee taking ``sim.fees``)."""
    out = []
    for venue_id, v in enumerate(cfg.venue.venues):
        maker = cfg.sim.fees.maker_rate if v.maker_rate is None else v.maker_rate
        taker = cfg.sim.fees.taker_rate if v.taker_rate is None else v.taker_rate
        out.append((venue_id, float(maker), float(taker)))
    return out


def sim_params(cfg: DictConfig) -> np.ndarray:
    """Build the simulator's parameter records, one per venue, from ``sim``, ``venue`` and ``report`` config."""
    lat = cfg.sim.latency
    venues = cfg.venue.venues
    if not venues:
        raise ValueError("venue.venues: configure at least one venue")
    prm = records(len(venues), SIM_PARAMS_DTYPE)
    prm["latency_model"] = lat.model.value
    prm["seed"] = lat.seed
    for channel in ("feed", "order", "response"):
        base = int(lat[f"{channel}_ns"])
        jitter = float(lat[f"{channel}_jitter_ns"])
        if base < 0 or jitter < 0:
            raise ValueError(f"sim.latency.{channel}_ns/_jitter_ns: must be >= 0, got {base}, {jitter}")
        prm[f"{channel}_ns"] = base
        prm[f"{channel}_jitter_ns"] = jitter
        for venue_id, v in enumerate(venues):
            own = v.get(f"{channel}_ns")
            if own is not None:
                if int(own) < 0:
                    raise ValueError(f"venue.venues[{venue_id}].{channel}_ns: must be >= 0, got {own}")
                prm[f"{channel}_ns"][venue_id] = int(own)
    for venue_id, maker, taker in venue_fees(cfg):
        prm["maker_fee_rate"][venue_id] = maker
        prm["taker_fee_rate"][venue_id] = taker
    prm["fill_model"] = cfg.sim.fill.model.value
    prm["equity_interval_ns"] = cfg.report.sample_interval_ns
    for name in ("transient_reject_rate", "ack_loss_rate", "submit_loss_rate"):
        rate = float(cfg.sim.faults[name])
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sim.faults.{name}: a probability in [0, 1], got {rate}")
        prm[name] = rate
    return prm


def execution_limits(execution: DictConfig) -> dict[str, float]:
    """The execution stage's limits record (``EXEC_LIMITS_DTYPE``) from the ``execution`` config (seconds -> ns)."""
    limits: dict[str, float] = {"max_attempts": execution.max_attempts,
                                "backoff_multiplier": execution.backoff_multiplier, "jitter": execution.jitter}
    for key in ("backoff_base_s", "backoff_max_s", "ack_timeout_s"):
        seconds = float(execution[key])
        if seconds < 0:
            raise ValueError(f"execution.{key}: must be >= 0, got {seconds}")
        limits[key[:-2] + "_ns"] = round(seconds * 1e9)
    return limits


def pipeline_spec(cfg: DictConfig, instruments: dict[str, int]) -> PipelineSpec:
    """Build the pipeline's sizes and risk limits from config (whole units -> fixed point)."""
    limits = instrument_limits(cfg.risk, instruments)
    return PipelineSpec(
        n_instruments=max(instruments.values()) + 1,
        order_capacity=cfg.sim.order_capacity,
        initial_capital=cfg.initial_capital,
        max_order_size=limits.pop("max_order_size"),
        max_position=(0,),
        price_collar=limits.pop("price_collar"),
        instrument_limits=limits,
        portfolio_limits=portfolio_limits(cfg.risk),
        strategy_id=cfg.risk.strategy_id,
        execution=execution_limits(cfg.execution),
        routing=tuple(venue_fees(cfg)) if len(cfg.venue.venues) > 1 else (),
    )


def build_strategy(cfg: DictConfig, instruments: dict[str, int], model: LoadedOnnx | None = None) -> Strategy:
    """The configured strategy's kernel, parameter record and fresh state; ``model`` goes to a
    strategy that takes one."""
    module = load_strategy(cfg.strategy.name)
    params = build_params(module.Params, OmegaConf.to_container(cfg.strategy.params, resolve=True))
    sparams, sstate = module.make(params, instruments) if model is None else module.make(params, instruments, model)
    return Strategy(module.on_event, sparams, sstate)


def build_backtest(
    cfg: DictConfig, data: PreparedData, journal: JournalWriter | JournalHasher | None, model: LoadedOnnx | None = None,
    *, remote: bool = False,
) -> Backtest:
    """Allocate every part of a backtest for ``cfg`` over ``data``; ``model`` goes to a strategy that takes one.

    ``remote``: the pipeline runs elsewhere (the lockstep venue server): the loop stops at
    every input due at it (``Backtest.run_async``)."""
    strategy = build_strategy(cfg, data.instruments, model)
    spec = pipeline_spec(cfg, data.instruments)
    prm = sim_params(cfg)
    rng = latency_streams(cfg.sim.latency.seed, cfg.sim.faults.seed)
    exchange = allocate_exchange(spec.n_instruments, spec.order_capacity, prm, rng,
                                 report_capacity=cfg.sim.queue_capacity)
    loop = allocate_loop(spec.order_capacity, 64, queue_capacity=cfg.sim.queue_capacity, journal=journal is not None,
                         remote=remote)
    return Backtest(allocate(spec), exchange, loop, strategy, journal)


def counters_of(bt: Backtest) -> dict[str, int]:
    """Flatten the pipeline's counters and rejections by reason for the report."""
    c = {name.lower(): int(v) for name, v in zip(Counter._fields, bt.p.counters)}
    names = reject_reason_names()
    for code, n in enumerate(bt.p.reject_counts):
        if n and code in names:
            c[f"rejected_{names[code].lower()}"] = int(n)
    c["events"] = events_stepped(bt.p.counters)
    c["orders"] = c["orders_submitted"]
    c["rejections"] = c["rejects_risk"] + c["rejects_venue"]
    return c


def run_backtest(cfg: DictConfig, out_dir: Path) -> dict:
    """Run one backtest, write its report into ``out_dir`` and print a summary."""
    t0 = time.perf_counter()
    data = prepare(cfg.data)
    model = strategy_model(cfg)
    journal: JournalWriter | JournalHasher | None = None
    if cfg.journal:
        header = {"strategy": cfg.strategy.name, "data": data.description, **model_meta(model),
                  "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)}
        journal = JournalWriter(out_dir / "journal.bin", header)
    bt = build_backtest(cfg, data, journal, model)
    chunks = data.stream(cfg.chunk_rows)
    show = bool(cfg.progress) and sys.stderr.isatty() and data.n_rows >= PROGRESS_MIN_ROWS
    try:
        with tqdm(total=data.n_rows, unit="ev", unit_scale=True, disable=not show, desc="backtest") as bar:
            result: BacktestResult = bt.run(chunks, progress=bar.update)
    except BaseException:
        if isinstance(journal, JournalWriter):
            journal.abort()
        raise
    counters = counters_of(bt)
    meta = {
        "strategy": cfg.strategy.name,
        "data": data.description,
        "journal_hash": result.journal_hash,
        "events_processed": result.n_events,
        "pipeline_inputs": result.n_inputs,
        "elapsed_seconds": time.perf_counter() - t0,
        "loop_seconds": result.loop_seconds,
        "compile_seconds": result.compile_seconds,
        "loop_events_per_second": result.n_inputs / result.loop_seconds if result.loop_seconds > 0 else 0.0,
        "risk": limits_summary(bt.p),
        **model_meta(model),
    }
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    instruments = {iid: sym for sym, iid in data.instruments.items()}
    metrics = write_report(
        out_dir, result.equity, result.fills, counters, instruments, meta,
        initial_capital=cfg.initial_capital, sample_interval_ns=cfg.report.sample_interval_ns,
        calendar=cfg.report.calendar,
    )
    print(format_summary(metrics))
    print(f"report: {out_dir}")
    return metrics
