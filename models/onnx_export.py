"""Export fitted scikit-learn and XGBoost models to ONNX, and check the export against the model.

Supported: LogisticRegression, LinearRegression, Ridge, GradientBoostingClassifier,
GradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor (skl2onnx),
XGBClassifier and XGBRegressor (onnxmltools). HistGradientBoosting* is not: skl2onnx
1.20's converter fails on it with onnx 1.23 ("Expected an int, got a boolean").

Input dtype: float32, always. Our features are float64, but the ai.onnx.ml operators
hold their thresholds, leaf weights and coefficients as float32, XGBoost compares
float32 features natively and scikit-learn's trees cast features to float32 before
comparing, so float32 input is the one dtype at which the ONNX graph, the compiled
kernels (``models.compiled``) and the native tree models take the same branches. The
price: each feature is rounded to float32 (relative error 2**-24, about 6e-8) before
the model sees it, which moves a linear model's score by at most 6e-8 x sum|w_i x_i|,
and moves a tree's decision only for a feature within float32 rounding of a threshold.
A float64 export would make skl2onnx emit plain MatMul/Sigmoid graphs for the linear
models and float64-threshold trees that onnxruntime compares differently; it would
buy precision we do not use at the cost of a second set of semantics.

The graph's input is named ``X`` with shape ``[N, n_features]``; classifiers are
exported without ZipMap, so their outputs are ``label`` and a ``probabilities``
tensor, and regressors output ``variable``. Opsets are pinned (``TARGET_OPSET``) so a
newer converter does not switch operators under the compiled kernels.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime
from onnxmltools.convert import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as MlFloatTensorType
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType as SklFloatTensorType
from sklearn.base import is_classifier
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from xgboost import XGBClassifier, XGBRegressor

SKLEARN_MODELS = (
    LogisticRegression, LinearRegression, Ridge, GradientBoostingClassifier, GradientBoostingRegressor,
    RandomForestClassifier, RandomForestRegressor,
)
XGBOOST_MODELS = (XGBClassifier, XGBRegressor)
TARGET_OPSET = {"": 15, "ai.onnx.ml": 3}
"""Opsets of the exported graphs. 15 is the newest main opset onnxmltools 1.16 accepts;
ai.onnx.ml 3 keeps the classic TreeEnsembleClassifier/Regressor operators."""
INPUT_NAME = "X"

ATOL = 1e-5
RTOL = 1e-5
"""Default tolerances of ``check_onnx_parity``; its docstring says why."""


class OnnxParityError(RuntimeError):
    """The ONNX model's outputs differ from the native model's beyond the stated tolerance."""


def export_onnx(model: Any, n_features: int) -> bytes:
    """Export a fitted model to serialized ONNX with float32 input of ``n_features`` columns.

    Raise TypeError for a model type we do not support, ValueError when the model was
    fitted on a different number of features.
    """
    fitted = getattr(model, "n_features_in_", None)
    if fitted is not None and fitted != n_features:
        raise ValueError(f"{type(model).__name__} was fitted on {fitted} features, not {n_features}")
    if isinstance(model, XGBOOST_MODELS):
        proto = _export_xgboost(model, n_features)
        converter = "onnxmltools"
    elif isinstance(model, SKLEARN_MODELS):
        proto = _export_sklearn(model, n_features)
        converter = "skl2onnx"
    else:
        names = ", ".join(cls.__name__ for cls in SKLEARN_MODELS + XGBOOST_MODELS)
        raise TypeError(f"cannot export {type(model).__name__} to ONNX; supported: {names}")
    onnx.helper.set_model_props(
        proto, {"native_model": f"{type(model).__module__}.{type(model).__name__}", "converter": converter}
    )
    return proto.SerializeToString()


def _export_sklearn(model: Any, n_features: int) -> onnx.ModelProto:
    proto = convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, SklFloatTensorType([None, n_features]))],
        options={"zipmap": False} if is_classifier(model) else None,
        target_opset=TARGET_OPSET,
    )
    if isinstance(model, (RandomForestClassifier, RandomForestRegressor)):
        _route_missing_like_sklearn(proto, model)
    return proto


def _route_missing_like_sklearn(proto: onnx.ModelProto, forest: Any) -> None:
    """Send NaN where scikit-learn does: its trees learn a side for missing values
    (``missing_go_to_left``), which skl2onnx 1.20 does not copy, so every NaN took the
    false (right) branch. Node ids in the graph are scikit-learn's node indices and
    the true branch is the left child, so the flag carries over as it is."""
    node = next(n for n in proto.graph.node if n.op_type.startswith("TreeEnsemble"))
    attributes = {a.name: a for a in node.attribute}
    tree_ids = attributes["nodes_treeids"].ints
    node_ids = attributes["nodes_nodeids"].ints
    modes = attributes["nodes_modes"].strings
    left = [estimator.tree_.missing_go_to_left for estimator in forest.estimators_]
    tracks = [int(mode != b"LEAF" and left[tree][i]) for tree, i, mode in zip(tree_ids, node_ids, modes)]
    node.attribute.remove(attributes["nodes_missing_value_tracks_true"])
    node.attribute.append(onnx.helper.make_attribute("nodes_missing_value_tracks_true", tracks))


def _export_xgboost(model: Any, n_features: int) -> onnx.ModelProto:
    # onnxmltools reads features by their booster names and accepts only f0, f1, ...;
    # our features are positional columns anyway, so drop the names on a copy
    unnamed = copy.deepcopy(model)
    unnamed.get_booster().feature_names = None
    return convert_xgboost(
        unnamed,
        initial_types=[(INPUT_NAME, MlFloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET[""],
    )


@dataclass(frozen=True)
class ParityResult:
    """The outcome of ``check_onnx_parity``.

    ``output`` is what was compared ("probabilities" or "prediction"). The worst row
    is the one whose error is largest relative to its tolerance; ``native`` and
    ``onnx`` are that row's outputs, ``features`` its input. ``label_mismatches``
    counts rows whose ONNX label differs from the native ``predict`` although the
    native top two probabilities are more than ``2 * atol`` apart (closer ones are
    ties that float32 rounding may break either way).
    """

    passed: bool
    output: str
    n_rows: int
    n_failed_rows: int
    max_abs_error: float
    atol: float
    rtol: float
    worst_row: int
    native: tuple[float, ...]
    onnx: tuple[float, ...]
    features: tuple[float, ...]
    label_mismatches: int

    def __str__(self) -> str:
        verdict = "passed" if self.passed else f"FAILED on {self.n_failed_rows} of {self.n_rows} rows"
        text = (
            f"ONNX parity {verdict} ({self.output}: |onnx - native| <= {self.atol:g} + {self.rtol:g} * |native|); "
            f"max error {self.max_abs_error:.3g}; worst row {self.worst_row}: native {_fmt(self.native)}, "
            f"onnx {_fmt(self.onnx)}, features {_fmt(self.features)}"
        )
        if self.label_mismatches:
            text += f"; {self.label_mismatches} predicted labels differ"
        return text

    def raise_if_failed(self) -> ParityResult:
        """Return self when parity holds; raise ``OnnxParityError`` with the worst row otherwise."""
        if not self.passed:
            raise OnnxParityError(str(self))
        return self


def check_onnx_parity(
    native_model: Any, onnx_bytes: bytes, X_holdout: Any, *, atol: float = ATOL, rtol: float = RTOL
) -> ParityResult:
    """Compare onnxruntime's output with the native model's on held-out rows.

    Classifiers compare ``predict_proba`` with the ONNX ``probabilities`` (and the
    predicted labels), regressors ``predict`` with the ONNX output. The native model
    gets ``X_holdout`` as given (float64, or a DataFrame); onnxruntime gets it as
    float32, so the check includes the float32 rounding of the input.

    Tolerance: an output passes when ``|onnx - native| <= atol + rtol * |native|``,
    by default 1e-5 + 1e-5 * |native|. Exported trees take the same branches as the
    native model (skl2onnx picks float32 thresholds that keep scikit-learn's float32
    decisions, XGBoost is float32 already), so they differ only by float32 leaf
    weights and float32 sums: some 1e-7 relative per tree, 1e-6 for a hundred trees.
    Linear models differ by the float32 rounding of inputs and coefficients, about
    1e-7 relative. 1e-5 leaves room for that; a wrong branch, base value or transform
    costs a leaf weight (1e-3 and up) and fails. Widen ``rtol`` for a linear regressor
    whose terms cancel to a prediction much smaller than its terms.
    """
    X = np.asarray(X_holdout, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X_holdout must be a non-empty 2-D matrix, got shape {X.shape}")
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    classifier = len(outputs) == 2  # label and probabilities; a regressor has one output
    if classifier:
        native = np.asarray(native_model.predict_proba(X_holdout), np.float64)
        got = np.asarray(outputs[1], np.float64)
    else:
        native = np.asarray(native_model.predict(X_holdout), np.float64).reshape(len(X), -1)
        got = np.asarray(outputs[0], np.float64).reshape(len(X), -1)
    if got.shape != native.shape:
        raise OnnxParityError(f"ONNX output has shape {got.shape}, the native model's {native.shape}")
    error = np.where(np.isnan(got) & np.isnan(native), 0.0, np.abs(got - native))
    error[np.isnan(error)] = np.inf  # NaN on one side only
    ratio = np.max(error / (atol + rtol * np.abs(np.nan_to_num(native))), axis=1)
    worst = int(np.argmax(ratio))
    mismatches = _label_mismatches(native_model, X_holdout, outputs[0], native, atol) if classifier else 0
    n_failed = int((ratio > 1.0).sum())
    return ParityResult(
        passed=n_failed == 0 and mismatches == 0,
        output="probabilities" if classifier else "prediction",
        n_rows=len(X),
        n_failed_rows=n_failed,
        max_abs_error=float(error.max()),
        atol=atol,
        rtol=rtol,
        worst_row=worst,
        native=tuple(native[worst].tolist()),
        onnx=tuple(got[worst].tolist()),
        features=tuple(X[worst].tolist()),
        label_mismatches=mismatches,
    )


def _label_mismatches(model: Any, X_holdout: Any, onnx_labels: np.ndarray, proba: np.ndarray, atol: float) -> int:
    native = np.asarray(model.predict(X_holdout))
    differ = np.asarray(onnx_labels).ravel() != native.ravel()
    top2 = np.sort(proba, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * atol
    return int((differ & clear).sum())


def _fmt(values: tuple[float, ...], limit: int = 8) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"
