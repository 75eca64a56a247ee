"""Turn the ``model`` config into a registry store and time periods, and load the model a strategy asks for.

A strategy asks for a model by naming it in ``strategy.params.model``
(``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``). The runner loads it once, before
anything runs, hands it to the strategy's ``make`` and records what it resolved to
(``model_meta``: the version and the ONNX file's sha256) in the report and the
journal header, so a run always says exactly which model traded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from app.data_source import period_ns, resolve_path

if TYPE_CHECKING:
    from models.registry import LoadedOnnx, RegistryStore


def registry_store(model_cfg: DictConfig) -> RegistryStore:
    """Return the store ``model.tracking_uri`` names, or the local SQLite store in ``model.registry_dir``."""
    from models.registry import RegistryStore  # MLflow takes seconds to import: only runs with a model pay it

    if model_cfg.tracking_uri:
        return RegistryStore(str(model_cfg.tracking_uri))
    return RegistryStore.local(resolve_path(str(model_cfg.registry_dir)))


def load_model(uri: str, store: RegistryStore, key: str) -> LoadedOnnx:
    """Load ``uri`` from ``store``; a missing model, version or alias fails naming ``key``, the URI and the store."""
    from mlflow.exceptions import MlflowException

    from models.registry import load_onnx

    try:
        return load_onnx(uri, store=store)
    except (MlflowException, ValueError) as e:
        raise ValueError(
            f"{key}: cannot load {uri!r} from {store.tracking_uri}: {e}. Train a model with "
            "`python run.py mode=train` and promote it with `python run.py mode=promote model.version=N`"
        ) from None


def strategy_model(cfg: DictConfig) -> LoadedOnnx | None:
    """Load the model named by ``strategy.params.model``; None for a strategy that takes no model."""
    uri = OmegaConf.select(cfg, "strategy.params.model")
    if uri is None:
        return None
    return load_model(str(uri), registry_store(cfg.model), "strategy.params.model")


def model_meta(model: LoadedOnnx | None) -> dict[str, Any]:
    """Return what a report and a journal header record about the model: URI, name, version, ONNX sha256."""
    if model is None:
        return {}
    return {"model_uri": model.uri, "model_name": model.name, "model_version": model.version,
            "model_sha256": model.sha256}


def _span(period: DictConfig, key: str) -> tuple[int, int]:
    """A period in nanoseconds with its open ends at the extremes of int64."""
    start, end = period_ns(period, key)
    return (np.iinfo(np.int64).min if start is None else start, np.iinfo(np.int64).max if end is None else end)


def check_out_of_sample(model_cfg: DictConfig) -> None:
    """Refuse a training period that overlaps the promotion period: the promotion backtest must be out of sample."""
    train_start, train_end = _span(model_cfg.train_period, "model.train_period")
    oos_start, oos_end = _span(model_cfg.promotion.period, "model.promotion.period")
    if train_start < oos_end and oos_start < train_end:
        tp, pp = model_cfg.train_period, model_cfg.promotion.period
        raise ValueError(
            f"model.train_period [{tp.start}, {tp.end}) overlaps model.promotion.period [{pp.start}, {pp.end}): "
            "a model must be judged on data it was not trained on"
        )
