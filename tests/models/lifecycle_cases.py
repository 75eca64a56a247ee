"""A labelled synthetic dataset and small trained models of each type, shared by the lifecycle tests.

Built once per session (cached): the shipped ``microstructure`` feature set over one
synthetic day of 20,000 trades, labelled 10 s ahead, and models of a few dozen trees,
so training all three types takes seconds on two cores.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from framework.data.synthetic import SyntheticSpec, generate_day
from framework.events import EVENT_DTYPE, concat_events
from framework.features import FeatureSet
from models.dataset import Dataset, LabelSpec, SplitSpec, build_dataset
from models.inference import check_compiled_parity
from models.metadata import embed_spec
from models.onnx_export import check_onnx_parity, export_onnx
from models.tracking import DataRange, TrainingRun
from models.training import TrainedModel, holdout_rows, train

ROOT = Path(__file__).resolve().parents[2]
FEATURES = FeatureSet.from_yaml(ROOT / "conf" / "features" / "microstructure.yaml")
LABEL = {"target": "up", "horizon_ns": 10_000_000_000, "price": "mid"}
SMALL = {
    "logistic_regression": {"C": 1.0, "max_iter": 500},
    "gradient_boosting": {"n_estimators": 20, "max_depth": 3},
    "xgboost": {"n_estimators": 20, "max_depth": 3, "tree_method": "hist"},
}
"""Hyper-parameters of each model type: small enough to train in a second."""


@cache
def market(trades_per_day: int = 20_000, seed: int = 5) -> np.ndarray:
    """A synthetic day of SYN (instrument 0) in replay order: quotes before trades on equal times."""
    day = generate_day(SyntheticSpec(symbol="SYN", trades_per_day=trades_per_day, seed=seed), 0)
    events = concat_events([day["quote"].view(EVENT_DTYPE), day["trade"].view(EVENT_DTYPE)])
    return events[np.argsort(events["ts_event"], kind="stable")]


@cache
def dataset() -> Dataset:
    """The shipped feature set over ``market()``, labelled 10 s ahead, split 60/20/20."""
    return build_dataset(market(), FEATURES, 0, LabelSpec(LABEL["horizon_ns"]), SplitSpec(0.6, 0.2, 0.2))


@cache
def trained(model_type: str) -> TrainedModel:
    """A model of ``model_type`` fitted on ``dataset()`` with ``SMALL`` parameters."""
    return train(dataset(), model_type, SMALL[model_type], seed=0)


def onnx_of(model) -> bytes:
    """Export ``model`` with the feature set and label written inside, as ``mode=train`` does."""
    return embed_spec(export_onnx(model, len(FEATURES.columns)), FEATURES, LABEL)


def training_run(model_type: str, data_end: str = "2024-01-01T12:00") -> TrainingRun:
    """What ``mode=train`` records for ``trained(model_type)``; the data range is said to end at ``data_end``
    (UTC), before the default promotion period, though the rows come from the whole day."""
    result = trained(model_type)
    X = holdout_rows(dataset(), 200)
    onnx_bytes = onnx_of(result.model)
    end_ns = int(np.datetime64(data_end, "ns").astype(np.int64))
    return TrainingRun(
        model_type=model_type, hyperparameters=SMALL[model_type], seed=0, features=FEATURES,
        label=LabelSpec(LABEL["horizon_ns"]), splits=SplitSpec(0.6, 0.2, 0.2),
        data=DataRange("synthetic SYN", int(dataset().ts_ns[0]), end_ns, len(market()), "d" * 64),
        dataset=dataset(), metrics=result.metrics, onnx_parity=check_onnx_parity(result.model, onnx_bytes, X),
        compiled_parity=check_compiled_parity(onnx_bytes, X), native_model=result.model, X_holdout=X,
    )
