"""Dispatch a run to the runner of its mode and return the objective for sweepers."""

from __future__ import annotations

import math
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

MODES = ("backtest", "train", "promote", "parity", "lockstep", "paper", "live")


def _run_mode(mode: str, cfg: DictConfig, out_dir: Path) -> tuple[dict, str | None]:
    """Run ``mode``; return its metrics and the config key naming its objective (None: it has none).

    Runners are imported here, so that a backtest does not pay for importing the
    training stack (MLflow, scikit-learn, XGBoost, onnxruntime).
    """
    if mode == "backtest":
        from app.backtest import run_backtest

        return run_backtest(cfg, out_dir), "objective"
    if mode == "train":
        from app.train import run_train

        return run_train(cfg, out_dir), "model.objective"
    if mode == "parity":
        from app.parity import run_parity

        return run_parity(cfg, out_dir), None
    if mode in ("lockstep", "paper", "live"):
        from app.live import run_live

        return run_live(cfg, out_dir), None
    from app.promote import run_promote

    return run_promote(cfg, out_dir), "objective"


def run(cfg: DictConfig) -> float:
    """Run the configured mode; return its objective (NaN if undefined).

    The objective is ``metrics[cfg.objective]`` of a backtest (for ``promote``: of the
    promotion backtest) and ``metrics[cfg.model.objective]`` of a training. A refused
    promotion, or a trained model whose ONNX export fails its parity check, ends the
    process with a non-zero status and the reason rather than a traceback: they are
    verdicts, not crashes.
    """
    mode = cfg.mode.name
    if mode not in MODES:
        raise ValueError(f"mode.name: {mode!r} is not available; expected one of {MODES}")
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    verdicts: tuple[type[Exception], ...] = ()
    if mode in ("train", "promote"):
        from models.onnx_export import OnnxParityError
        from models.promotion import PromotionRefused

        verdicts = (PromotionRefused, OnnxParityError)
    elif mode in ("lockstep", "paper", "live"):
        from app.live import SessionFailed
        from live.venues.binance.credentials import CredentialsError

        verdicts = (SessionFailed, CredentialsError)
    try:
        metrics, key = _run_mode(mode, cfg, out_dir)
    except verdicts as e:
        raise SystemExit(f"{mode}: {e}") from None
    if key is None:
        return math.nan
    objective = OmegaConf.select(cfg, key)
    value = metrics.get(objective)
    if value is None:
        raise ValueError(f"{key}: {objective!r} is not a metric; have {sorted(metrics)}")
    return float(value) if isinstance(value, (int, float)) else math.nan
