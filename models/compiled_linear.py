"""Linear models (ai.onnx.ml LinearClassifier and LinearRegressor) as flat arrays and one kernel.

``predict_linear`` computes ``intercepts + coefficients @ float32(x)`` per class or
target, then ``post_transform`` (NONE, LOGISTIC each score on its own, SOFTMAX) and,
for a classifier followed by an L1 ``Normalizer``, divides by the sum of absolute
values. That is what skl2onnx emits for LogisticRegression (two classes: one row of
coefficients per class and LOGISTIC; more: SOFTMAX then L1), LinearRegression and
Ridge. The input is rounded to float32 as onnxruntime's float32 input tensor is; the
sums are float64 where onnxruntime's are float32, so outputs agree to float32 rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit

from framework.events import records
from framework.jit import KERNEL
from models.enums import LINEAR_PARAMS_DTYPE, Normalize, Transform
from models.onnx_graph import ModelGraph, check_attributes, text, unsupported
from models.scores import apply_transform

_CLASSIFIER_ATTRIBUTES = (
    "coefficients", "intercepts", "post_transform", "classlabels_ints", "classlabels_strings", "multi_class",
)
_REGRESSOR_ATTRIBUTES = ("coefficients", "intercepts", "post_transform", "targets")
_TRANSFORMS = {"NONE": Transform.IDENTITY, "LOGISTIC": Transform.LOGISTIC, "SOFTMAX": Transform.SOFTMAX}


class LinearArrays(NamedTuple):
    """Everything ``predict_linear`` reads: one ``LINEAR_PARAMS_DTYPE`` record, the
    ``(n_outputs, n_features)`` coefficients and the intercepts, float32 values widened to float64."""

    params: np.ndarray
    coefficients: np.ndarray
    intercepts: np.ndarray


def linear_arrays(graph: ModelGraph) -> tuple[LinearArrays, tuple[Any, ...] | None]:
    """Build the kernel's arrays from a linear node; also return the class labels (None for a regressor).

    ``multi_class`` is accepted and ignored, as onnxruntime ignores it: the scores are
    always one dot product per row of coefficients.
    """
    node, a = graph.node, graph.attributes
    classifier = node.op_type == "LinearClassifier"
    check_attributes(node, a, _CLASSIFIER_ATTRIBUTES if classifier else _REGRESSOR_ATTRIBUTES)
    labels: tuple[Any, ...] | None = None
    if classifier:
        strings = a.get("classlabels_strings")
        labels = tuple(text(s) for s in strings) if strings else tuple(int(i) for i in a.get("classlabels_ints", ()))
        n_outputs = len(labels)
    else:
        n_outputs = int(a.get("targets", 1))
    coefficients = np.asarray(a.get("coefficients", ()), np.float32).astype(np.float64)
    intercepts = np.asarray(a.get("intercepts", ()), np.float32).astype(np.float64)
    if n_outputs == 0 or coefficients.size != n_outputs * graph.n_features:
        raise unsupported(
            node, f"{coefficients.size} coefficients for {n_outputs} outputs of {graph.n_features} features "
            "(one row per class or target is implemented)",
        )
    if intercepts.size == 0:
        intercepts = np.zeros(n_outputs)
    if intercepts.size != n_outputs:
        raise unsupported(node, f"{intercepts.size} intercepts for {n_outputs} outputs")
    post = text(a.get("post_transform", b"NONE"))
    if post not in _TRANSFORMS or (not classifier and post != "NONE"):
        raise unsupported(node, f"post_transform {post} is not implemented")
    if graph.normalize != Normalize.NONE and not classifier:
        raise unsupported(node, "a Normalizer after a regressor is not implemented")
    params = records(1, LINEAR_PARAMS_DTYPE)
    params["n_features"] = graph.n_features
    params["n_outputs"] = n_outputs
    params["transform"] = _TRANSFORMS[post]
    params["normalize"] = graph.normalize
    return LinearArrays(params, coefficients.reshape(n_outputs, graph.n_features), intercepts), labels


@njit(**KERNEL)
def predict_linear(model, x, out) -> None:
    """Evaluate one row ``x`` (float64, ``n_features`` long) into ``out[:n_outputs]``, allocating nothing."""
    prm = model.params[0]
    n = prm.n_outputs
    coefficients = model.coefficients
    for k in range(n):
        s = model.intercepts[k]
        for j in range(prm.n_features):
            s += coefficients[k, j] * np.float64(np.float32(x[j]))
        out[k] = s
    apply_transform(out, n, prm.transform)
    if prm.normalize == Normalize.L1:
        total = 0.0
        for k in range(n):
            total += abs(out[k])
        for k in range(n):
            out[k] /= total


@njit(**KERNEL)
def predict_linear_rows(model, X, out) -> None:
    """Evaluate every row of ``X`` into the same row of ``out`` (research and batch use)."""
    for r in range(X.shape[0]):
        predict_linear(model, X[r], out[r])
