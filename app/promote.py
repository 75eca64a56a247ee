"""The promotion runner (``mode=promote``): gate one registered version, then move the alias to it.

``python run.py mode=promote model.name=signal model.version=3`` judges
``models:/signal/3`` by the gates of ``models/promotion.py``:

1. ``onnx_parity``: the registered file against the native model and held-out rows
   logged at training, and the compiled kernel against onnxruntime;
2. ``backtest``: the configured strategy (``model_signal`` in this mode) trading that
   exact version over ``model.promotion.period``, which must start after the data the
   version was trained on, reaching ``model.promotion.*`` thresholds;
3. ``determinism``: that backtest run a second time gives the same journal hash.

Every gate is evaluated and logged to MLflow in a promotion run (``models/tracking.py``)
whatever the others said; a gate that cannot be evaluated (no training artifacts, a
backtest that fails) fails. Only when all pass does ``model.alias`` move; otherwise
``PromotionRefused`` names each failing gate and the alias stays where it was. The two
backtest reports are written under the run's output folder (``backtest/``, ``rerun/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from app.backtest import build_backtest, counters_of
from app.data_source import period_ns, prepare
from app.model_source import load_model, model_meta, registry_store
from framework.journal import JournalHasher
from framework.report import write_report
from models.promotion import (
    GateResult,
    Thresholds,
    backtest_gate,
    decide,
    determinism_gate,
    not_evaluated,
    parity_gate,
)
from models.registry import LoadedOnnx, RegistryStore, set_alias
from models.tracking import iso, load_training_artifacts, log_promotion


@dataclass(frozen=True)
class GateBacktest:
    """What the gates need from one backtest: its ``metrics.json`` and its journal hash."""

    metrics: dict
    journal_hash: str


BacktestRunner = Callable[[DictConfig, LoadedOnnx, Path], GateBacktest]
"""Runs the promotion backtest of ``cfg`` trading ``model`` and writes its report into a folder."""


def gate_backtest(cfg: DictConfig, model: LoadedOnnx, out_dir: Path) -> GateBacktest:
    """Backtest ``cfg``'s strategy trading ``model`` over ``model.promotion.period``; write its report to ``out_dir``.

    The journal is hashed, not written: the determinism gate compares the hashes of two runs.
    """
    start_ns, end_ns = period_ns(cfg.model.promotion.period, "model.promotion.period")
    data = prepare(cfg.data)
    journal = JournalHasher()
    bt = build_backtest(cfg, data, journal, model)
    result = bt.run(data.catalog.stream(data.streams, start_ns, end_ns, chunk_rows=int(cfg.chunk_rows)))
    if result.n_events == 0:
        period = cfg.model.promotion.period
        raise ValueError(f"model.promotion.period: no events of {data.description} in [{period.start}, {period.end})")
    meta = {
        "strategy": cfg.strategy.name,
        "data": data.description,
        "period": [cfg.model.promotion.period.start, cfg.model.promotion.period.end],
        "journal_hash": result.journal_hash,
        "events_processed": result.n_events,
        "pipeline_inputs": result.n_inputs,
        **model_meta(model),
    }
    metrics = write_report(
        out_dir, result.equity, result.fills, counters_of(bt), {i: s for s, i in data.instruments.items()}, meta,
        initial_capital=cfg.initial_capital, sample_interval_ns=cfg.report.sample_interval_ns,
        calendar=cfg.report.calendar,
    )
    return GateBacktest(metrics, str(result.journal_hash))


def run_promote(cfg: DictConfig, out_dir: Path, backtest: BacktestRunner = gate_backtest) -> dict:
    """Gate ``model.version`` and move ``model.alias`` to it; raise ``PromotionRefused`` when a gate fails.

    Return the promotion backtest's metrics (for sweepers, like a backtest's).
    """
    mc = cfg.model
    if mc.version is None:
        raise ValueError("model.version: name the version to promote, e.g. model.version=3")
    if OmegaConf.select(cfg, "strategy.params.model") is None:
        raise ValueError(f"strategy: {cfg.strategy.name} trades no model (it has no strategy.params.model); "
                         "promotion backtests one that does, such as strategy=model_signal")
    name, version, alias = str(mc.name), int(mc.version), str(mc.alias)
    store = registry_store(mc)
    uri = f"models:/{name}/{version}"
    model = load_model(uri, store, "model.version")
    thresholds = Thresholds(float(mc.promotion.min_sharpe), float(mc.promotion.min_total_return),
                            float(mc.promotion.max_drawdown), int(mc.promotion.min_fills))
    candidate = OmegaConf.merge(cfg, {"strategy": {"params": {"model": uri}}})
    gates, metrics = _evaluate(candidate, model, thresholds, out_dir, backtest, store)
    params = {
        "model_uri": uri, "alias": alias, "strategy": cfg.strategy.name,
        "period_start": mc.promotion.period.start, "period_end": mc.promotion.period.end, **asdict(thresholds),
    }
    report = out_dir / "backtest"
    run_id = log_promotion(name, version, alias, gates, params, report if report.is_dir() else None,
                           store=store, experiment=str(mc.experiment))
    (out_dir / "promotion.json").write_text(json.dumps(
        {"model_uri": uri, "alias": alias, "mlflow_run_id": run_id,
         "gates": [{"gate": g.name, "passed": g.passed, "detail": g.detail} for g in gates]}, indent=2) + "\n")
    for gate in gates:
        print(gate)
    print(f"mlflow: promotion run {run_id} in experiment {mc.experiment!r} at {store.tracking_uri}")
    decide(name, version, alias, gates)
    set_alias(name, alias, version, store=store)
    print(f"promoted: models:/{name}@{alias} -> version {version} (onnx sha256 {model.sha256[:16]})")
    return metrics


def _evaluate(
    cfg: DictConfig, model: LoadedOnnx, thresholds: Thresholds, out_dir: Path, backtest: BacktestRunner,
    store: RegistryStore,
) -> tuple[list[GateResult], dict]:
    """Evaluate every gate; one that cannot be evaluated fails with the reason."""
    mc = cfg.model
    try:
        artifacts = load_training_artifacts(model.name, model.version, store=store)
    except FileNotFoundError as e:
        artifacts = None
        gates = [not_evaluated("onnx_parity", str(e))]
    else:
        gates = [parity_gate(artifacts.native_model, model.onnx_bytes, artifacts.X_holdout,
                             atol=float(mc.promotion.parity_atol), rtol=float(mc.promotion.parity_rtol))]
    start_ns, _ = period_ns(mc.promotion.period, "model.promotion.period")
    if artifacts is not None and (start_ns is None or start_ns <= artifacts.data_end_ns):
        reason = (f"model.promotion.period starts at {mc.promotion.period.start}, not after the data version "
                  f"{model.version} was trained on (up to {iso(artifacts.data_end_ns)}): not out of sample")
        return gates + [not_evaluated("backtest", reason), not_evaluated("determinism", reason)], {}
    try:
        first = backtest(cfg, model, out_dir / "backtest")
        second = backtest(cfg, model, out_dir / "rerun")
    except (ValueError, RuntimeError) as e:
        reason = f"the backtest failed: {e}"
        return gates + [not_evaluated("backtest", reason), not_evaluated("determinism", reason)], {}
    gates += [backtest_gate(first.metrics, thresholds), determinism_gate(first.journal_hash, second.journal_hash)]
    return gates, first.metrics
