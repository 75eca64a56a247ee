"""A compiled model as a strategy holds it, one kernel to call per decision, and its check against onnxruntime.

``inference_model(compile_onnx(onnx_bytes))`` gives an ``InferenceModel``: the model's
family, its arrays and a scratch row for the scores. ``predict(model, x)`` evaluates
one feature row inside ``step`` with no allocation. Both families' arrays are always
present (the unused one empty), so a tree ensemble and a linear model have the same
Numba type: a strategy's compiled loop is built once and serves any model, and
swapping the model never recompiles it. The branch on the family costs nothing next
to the walk.

``check_compiled_parity`` compares the kernel with onnxruntime on given rows: the
pipeline trades on the kernel, the registry holds the ONNX file, and the two must
agree before a version is promoted.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import onnxruntime
from numba import njit

from framework.events import records
from framework.jit import HOT
from models.compiled import CompiledModel, compile_onnx
from models.compiled_linear import LinearArrays, predict_linear
from models.compiled_trees import TreeEnsembleArrays, predict_tree_ensemble
from models.enums import LINEAR_PARAMS_DTYPE, TREE_DTYPE, TREE_NODE_DTYPE, TREE_PARAMS_DTYPE, TREE_WEIGHT_DTYPE

Family = namedtuple("Family", "TREES LINEAR")(0, 1)
"""Which kernel evaluates a model."""

InferenceModel = namedtuple("InferenceModel", "family trees linear scores")
"""``family`` (``Family``), ``trees`` (``TreeEnsembleArrays``), ``linear`` (``LinearArrays``; the
family not in use is empty) and ``scores``: float64, ``n_outputs`` long, written by ``predict``."""

ATOL = 1e-6
RTOL = 1e-6
"""Compiled kernel against onnxruntime: the kernel sums in float64 and onnxruntime in float32,
on the same float32 weights and the same leaves, so they differ by float32 rounding of the sum
(about 1e-7 relative for a hundred trees); a different leaf or transform costs 1e-3 and more."""


def _no_trees() -> TreeEnsembleArrays:
    return TreeEnsembleArrays(
        records(1, TREE_PARAMS_DTYPE), records(0, TREE_DTYPE), records(0, TREE_NODE_DTYPE),
        np.zeros(1, np.int64), records(0, TREE_WEIGHT_DTYPE), np.zeros(0),
    )


def _no_linear() -> LinearArrays:
    return LinearArrays(records(1, LINEAR_PARAMS_DTYPE), np.zeros((0, 0)), np.zeros(0))


def inference_model(compiled: CompiledModel) -> InferenceModel:
    """Wrap a compiled model for ``predict``: its arrays in its family's slot, a scratch row for the scores."""
    scores = np.zeros(compiled.n_outputs)
    if isinstance(compiled.arrays, TreeEnsembleArrays):
        return InferenceModel(Family.TREES, compiled.arrays, _no_linear(), scores)
    return InferenceModel(Family.LINEAR, _no_trees(), compiled.arrays, scores)


@njit(**HOT)
def predict(model, x) -> None:
    """Evaluate the float64 feature row ``x`` into ``model.scores`` (class probabilities in label order)."""
    if model.family == Family.TREES:
        predict_tree_ensemble(model.trees, x, model.scores)
    else:
        predict_linear(model.linear, x, model.scores)


@dataclass(frozen=True)
class CompiledParity:
    """The outcome of ``check_compiled_parity``: the largest difference and the rows beyond tolerance."""

    passed: bool
    n_rows: int
    n_failed_rows: int
    max_abs_error: float
    atol: float
    rtol: float

    def __str__(self) -> str:
        verdict = "passed" if self.passed else f"FAILED on {self.n_failed_rows} of {self.n_rows} rows"
        return (
            f"compiled kernel parity with onnxruntime {verdict} "
            f"(|kernel - ort| <= {self.atol:g} + {self.rtol:g} * |ort|); max error {self.max_abs_error:.3g}"
        )


def onnxruntime_scores(onnx_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """Return onnxruntime's scores for the rows of ``X`` (fed as float32): class probabilities for a
    classifier, the prediction for a regressor, one row per input row."""
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: np.asarray(X, np.float32)})
    scores = outputs[1] if len(outputs) == 2 else outputs[0]
    return np.asarray(scores, np.float64).reshape(len(X), -1)


def check_compiled_parity(
    onnx_bytes: bytes, X: np.ndarray, *, atol: float = ATOL, rtol: float = RTOL
) -> CompiledParity:
    """Compare the compiled kernel's outputs with onnxruntime's on the rows of ``X``."""
    X = np.asarray(X, np.float64)
    ort = onnxruntime_scores(onnx_bytes, X)
    kernel = compile_onnx(onnx_bytes).predict(X)
    error = np.abs(kernel - ort)
    failed = (error > atol + rtol * np.abs(ort)).any(axis=1) | np.isnan(error).any(axis=1)
    return CompiledParity(
        passed=not failed.any(), n_rows=len(X), n_failed_rows=int(failed.sum()),
        max_abs_error=float(np.nanmax(error)) if error.size else 0.0, atol=atol, rtol=rtol,
    )
