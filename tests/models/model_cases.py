"""Small fitted models of every supported type, their ONNX exports and held-out rows.

Built once per test session (``case(name)`` is cached): tens of trees of depth at most
four on a few hundred rows, so the whole set fits in a few seconds on two cores.
Features are rounded to one decimal, so held-out rows often sit exactly on a
training value, which is where tree thresholds lie.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import onnx
import onnxruntime
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from xgboost import XGBClassifier, XGBRegressor

from models.onnx_export import export_onnx

N_FEATURES = 6
N_TRAIN = 300
N_HOLDOUT = 200


@dataclass(frozen=True)
class Case:
    """A fitted model, its ONNX export and rows it did not see."""

    name: str
    model: Any
    onnx_bytes: bytes
    X_holdout: np.ndarray

    @property
    def classifier(self) -> bool:
        return hasattr(self.model, "classes_")


def dataset(target: str, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_HOLDOUT
    X = np.round(rng.normal(size=(n, N_FEATURES)), 1)
    signal = X[:, 0] + 0.5 * X[:, 1] - 0.3 * X[:, 2] + 0.3 * rng.normal(size=n)
    if target == "binary":
        y = (signal > 0).astype(np.int64)
    elif target == "multiclass":
        y = np.digitize(signal, [-0.6, 0.6])
    elif target == "strings":
        y = np.where(signal > 0, "up", "down")
    elif target == "two_targets":
        y = np.column_stack([signal, X[:, 3] - X[:, 4]])
    else:
        y = 2.0 * signal + X[:, 3]
    return X, y


MODELS = {
    "logistic_binary": (lambda: LogisticRegression(), "binary"),
    "logistic_multiclass": (lambda: LogisticRegression(), "multiclass"),
    "logistic_string_labels": (lambda: LogisticRegression(), "strings"),
    "linear": (lambda: LinearRegression(), "regression"),
    "linear_two_targets": (lambda: LinearRegression(), "two_targets"),
    "ridge": (lambda: Ridge(alpha=2.0), "regression"),
    "gbm_binary": (lambda: GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), "binary"),
    "gbm_multiclass": (lambda: GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0), "multiclass"),
    "gbm_regressor": (lambda: GradientBoostingRegressor(n_estimators=30, max_depth=4, random_state=0), "regression"),
    "forest_binary": (lambda: RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0, n_jobs=1), "binary"),
    "forest_multiclass": (
        lambda: RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0, n_jobs=1), "multiclass",
    ),
    "forest_regressor": (lambda: RandomForestRegressor(n_estimators=20, max_depth=4, random_state=0, n_jobs=1),
                         "regression"),
    "forest_two_targets": (lambda: RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0, n_jobs=1),
                           "two_targets"),
    "xgb_binary": (lambda: XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, random_state=0), "binary"),
    "xgb_multiclass": (lambda: XGBClassifier(n_estimators=15, max_depth=4, n_jobs=1, random_state=0), "multiclass"),
    "xgb_regressor": (lambda: XGBRegressor(n_estimators=30, max_depth=4, n_jobs=1, random_state=0), "regression"),
}
TREE_MODELS = [name for name in MODELS if name.split("_")[0] in ("gbm", "forest", "xgb")]


@cache
def case(name: str) -> Case:
    """Fit, export and hold out rows for the model called ``name`` in ``MODELS``."""
    make, target = MODELS[name]
    X, y = dataset(target)
    model = make().fit(X[:N_TRAIN], y[:N_TRAIN])
    return Case(name, model, export_onnx(model, N_FEATURES), X[N_TRAIN:])


def with_nans(X: np.ndarray, fraction: float = 0.2, seed: int = 3) -> np.ndarray:
    """Return a copy of ``X`` with ``fraction`` of its entries NaN."""
    rng = np.random.default_rng(seed)
    out = X.copy()
    out[rng.random(X.shape) < fraction] = np.nan
    return out


@cache
def _session(onnx_bytes: bytes) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])


def run_onnxruntime(onnx_bytes: bytes, X: np.ndarray) -> list[np.ndarray]:
    """Run the model on ``X`` as float32, the way the exported graph is meant to be fed."""
    session = _session(onnx_bytes)
    return session.run(None, {session.get_inputs()[0].name: np.asarray(X, np.float32)})


def scores(case_or_bytes: Case | bytes, X: np.ndarray) -> np.ndarray:
    """onnxruntime's probabilities (classifiers) or predictions (regressors) as float64 rows."""
    onnx_bytes = case_or_bytes.onnx_bytes if isinstance(case_or_bytes, Case) else case_or_bytes
    outputs = run_onnxruntime(onnx_bytes, X)
    return np.asarray(outputs[-1], np.float64).reshape(len(X), -1)


def edit_predictor(onnx_bytes: bytes, **attributes: Any) -> bytes:
    """Return the model with attributes of its predictive node replaced (or added)."""
    model = onnx.ModelProto.FromString(onnx_bytes)
    node = next(n for n in model.graph.node if n.domain == "ai.onnx.ml" and n.op_type != "Normalizer")
    for name, value in attributes.items():
        for old in [a for a in node.attribute if a.name == name]:
            node.attribute.remove(old)
        node.attribute.append(onnx.helper.make_attribute(name, value))
    return model.SerializeToString()


def predictor_attribute(onnx_bytes: bytes, name: str) -> Any:
    """Return one attribute of the model's predictive node, decoded."""
    model = onnx.ModelProto.FromString(onnx_bytes)
    node = next(n for n in model.graph.node if n.domain == "ai.onnx.ml" and n.op_type != "Normalizer")
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)
