"""From raw scores to a model's output, and from class probabilities to a class.

Shared by the tree and linear kernels. Computed in float64: onnxruntime computes the
same functions in float32, so the two agree to float32 rounding (about 1e-7), and the
float64 result is the closer one to the native scikit-learn or XGBoost model.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from framework.jit import HOT, KERNEL
from models.enums import Transform


@njit(**HOT)
def logistic(s: float) -> float:
    """Return 1 / (1 + exp(-s)) without overflow for large negative ``s``."""
    if s >= 0.0:
        return 1.0 / (1.0 + np.exp(-s))
    e = np.exp(s)
    return e / (1.0 + e)


@njit(**HOT)
def apply_transform(out, n: int, transform: int) -> None:
    """Turn the raw scores ``out[:n]`` into the output in place (see ``Transform``)."""
    if transform == Transform.LOGISTIC:
        for k in range(n):
            out[k] = logistic(out[k])
    elif transform == Transform.SOFTMAX:
        top = out[0]
        for k in range(1, n):
            top = max(top, out[k])
        total = 0.0
        for k in range(n):
            out[k] = np.exp(out[k] - top)
            total += out[k]
        for k in range(n):
            out[k] /= total
    elif transform == Transform.BINARY_LOGISTIC:
        s = out[0]
        out[0] = logistic(-s)
        out[1] = logistic(s)
    elif transform == Transform.BINARY_COMPLEMENT:
        s = out[0]
        out[0] = 1.0 - s
        out[1] = s
    elif transform == Transform.BINARY_NEGATE:
        s = out[0]
        out[0] = -s
        out[1] = s


@njit(**KERNEL)
def best_class(probabilities, n_classes: int) -> int:
    """Return the index of the most probable class, the first one on a tie (as ``argmax``).

    This is the class scikit-learn's and XGBoost's ``predict`` return; map it through
    ``CompiledModel.labels`` for the label itself.
    """
    best = 0
    for k in range(1, n_classes):
        if probabilities[k] > probabilities[best]:
            best = k
    return best
