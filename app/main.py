"""Dispatch a run to the runner of its mode and return the objective for sweepers."""

from __future__ import annotations

import math
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

MODES = ("backtest",)


def run(cfg: DictConfig) -> float:
    """Run the configured mode; return ``metrics[cfg.objective]`` (NaN if undefined)."""
    mode = cfg.mode.name
    if mode not in MODES:
        raise ValueError(f"mode.name: {mode!r} is not available; expected one of {MODES}")
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    from app.backtest import run_backtest

    metrics = run_backtest(cfg, out_dir)
    value = metrics.get(cfg.objective)
    if value is None:
        raise ValueError(f"objective: {cfg.objective!r} is not a metric; have {sorted(metrics)}")
    return float(value) if isinstance(value, (int, float)) else math.nan
