"""Fit a classifier of the up move on a dataset's training split and score it on every split.

Three model types, named in ``model.type``: ``logistic_regression`` (scikit-learn),
``gradient_boosting`` (scikit-learn ``GradientBoostingClassifier``) and ``xgboost``
(``XGBClassifier``). ``model.params`` are passed to the estimator as they are (any
keyword it accepts); ``model.seed`` becomes its ``random_state``, so training is
repeatable.

The logistic regression is fitted on standardized features, since its penalty and
solver depend on the features' scale, and the standardization is then folded into
its coefficients (``w / s`` and ``b - sum(w m / s)``), so the exported model reads the
raw features. The compiled kernels and the ONNX graph then hold only the predictive
node: a separate Scaler would be a node the kernels do not implement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from xgboost import XGBClassifier

from models.dataset import SPLITS, Dataset

MODEL_TYPES: dict[str, type] = {
    "logistic_regression": LogisticRegression,
    "gradient_boosting": GradientBoostingClassifier,
    "xgboost": XGBClassifier,
}
"""``model.type`` to the estimator it trains."""


@dataclass(frozen=True)
class TrainedModel:
    """A fitted estimator and its metrics on each split (``<split>_<metric>``)."""

    model: Any
    metrics: dict[str, float]


def build_estimator(model_type: str, params: Mapping[str, Any], seed: int) -> Any:
    """Return an unfitted estimator of ``model_type`` with ``params``, refusing unknown keys by name."""
    cls = MODEL_TYPES.get(model_type)
    if cls is None:
        raise ValueError(f"model.type: {model_type!r} is not one of {sorted(MODEL_TYPES)}")
    known = set(cls().get_params())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"model.params: {model_type} does not take {unknown}; it takes {sorted(known)}")
    return cls(**{"random_state": seed, **params})


def fit(model_type: str, params: Mapping[str, Any], seed: int, X: np.ndarray, y: np.ndarray) -> Any:
    """Fit an estimator of ``model_type`` on ``X``, ``y`` (see the module docstring for the logistic regression)."""
    model = build_estimator(model_type, params, seed)
    if not isinstance(model, LogisticRegression):
        return model.fit(X, y)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0.0] = 1.0
    model.fit((X - mean) / scale, y)
    model.coef_ = model.coef_ / scale
    model.intercept_ = model.intercept_ - model.coef_ @ mean
    return model


def evaluate(model: Any, X: np.ndarray, y: np.ndarray, forward_return: np.ndarray) -> dict[str, float]:
    """Score the model's probability of an up move on rows ``X`` with labels ``y``.

    ``rows``; ``up_fraction`` (the base rate); ``accuracy``; ``log_loss``; ``roc_auc`` (NaN
    when only one class is present); ``edge_bp``: the mean forward return, in basis points,
    of taking the predicted side on every row, before any cost.
    """
    p_up = model.predict_proba(X)[:, list(model.classes_).index(1)]
    both = len(np.unique(y)) == 2
    return {
        "rows": float(len(y)),
        "up_fraction": float(y.mean()),
        "accuracy": float(accuracy_score(y, p_up > 0.5)),
        "log_loss": float(log_loss(y, p_up, labels=[0, 1])),
        "roc_auc": float(roc_auc_score(y, p_up)) if both else float("nan"),
        "edge_bp": float(np.mean(np.where(p_up > 0.5, 1.0, -1.0) * forward_return) * 1e4),
    }


def train(dataset: Dataset, model_type: str, params: Mapping[str, Any], seed: int) -> TrainedModel:
    """Fit on the training split and evaluate on train, validation and test."""
    X, y = dataset.split("train")
    if len(np.unique(y)) < 2:
        raise ValueError("model: the training split holds only one class; use more data (model.train_period)")
    model = fit(model_type, params, seed, X, y)
    metrics: dict[str, float] = {}
    for name in SPLITS:
        rows = dataset.splits[name]
        scores = evaluate(model, dataset.X[rows], dataset.y[rows], dataset.forward_return[rows])
        metrics.update({f"{name}_{key}": value for key, value in scores.items()})
    return TrainedModel(model, metrics)


def holdout_rows(dataset: Dataset, n_rows: int) -> np.ndarray:
    """Return up to ``n_rows`` test rows spread evenly over the test split: the rows parity is checked on."""
    X, _ = dataset.split("test")
    if n_rows < 1:
        raise ValueError(f"model.parity_rows: must be positive, got {n_rows}")
    take = np.unique(np.linspace(0, len(X) - 1, min(n_rows, len(X))).astype(np.int64))
    return X[take]
