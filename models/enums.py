"""Integer constants and record dtypes of the compiled models, declared once.

The compiled kernels (``models.compiled_trees``, ``models.compiled_linear``) read
these as constants; the ONNX parser (``models.onnx_graph``) and the array builders
write them. Numba folds the namedtuple fields into the compiled code.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

NodeMode = namedtuple("NodeMode", "LEAF BRANCH_LEQ BRANCH_LT BRANCH_GTE BRANCH_GT BRANCH_EQ BRANCH_NEQ")(
    0, 1, 2, 3, 4, 5, 6
)
"""How a tree node compares ``float32(x[feature])`` with its threshold; LEAF ends the walk."""

NODE_MODES = {
    b"LEAF": NodeMode.LEAF,
    b"BRANCH_LEQ": NodeMode.BRANCH_LEQ,
    b"BRANCH_LT": NodeMode.BRANCH_LT,
    b"BRANCH_GTE": NodeMode.BRANCH_GTE,
    b"BRANCH_GT": NodeMode.BRANCH_GT,
    b"BRANCH_EQ": NodeMode.BRANCH_EQ,
    b"BRANCH_NEQ": NodeMode.BRANCH_NEQ,
}
"""ONNX ``nodes_modes`` strings to ``NodeMode``."""

Aggregate = namedtuple("Aggregate", "SUM AVERAGE")(0, 1)
"""How the trees' leaf weights combine: summed, or summed and divided by the number of trees."""

Transform = namedtuple(
    "Transform", "IDENTITY LOGISTIC SOFTMAX BINARY_LOGISTIC BINARY_COMPLEMENT BINARY_NEGATE"
)(0, 1, 2, 3, 4, 5)
"""What turns the raw scores into the output, after base values are added.

IDENTITY, LOGISTIC (each output on its own) and SOFTMAX (over all outputs) are ONNX's
``post_transform`` NONE, LOGISTIC and SOFTMAX. The BINARY_* forms are how a two-class
classifier whose trees carry one score ``s`` (for the second class) fills both
columns, as onnxruntime does: ``[logistic(-s), logistic(s)]`` for LOGISTIC,
``[1 - s, s]`` for NONE when every weight is non-negative (a forest's averaged
probabilities), ``[-s, s]`` for NONE with signed weights.
"""

Normalize = namedtuple("Normalize", "NONE L1")(0, 1)
"""The ``Normalizer`` node after a linear classifier: none, or divide by the sum of absolute values."""

TREE_PARAMS_DTYPE = np.dtype(
    [
        ("n_features", "<i8"),
        ("n_outputs", "<i8"),
        ("n_trees", "<i8"),
        ("aggregate", "<i8"),
        ("transform", "<i8"),
    ],
    align=True,
)
"""One record per tree ensemble: sizes and the enumerations above."""

TREE_DTYPE = np.dtype([("root", "<i8"), ("depth", "<i8")], align=True)
"""One tree: the index of its root node and the number of steps from the root to its deepest leaf."""

TREE_NODE_DTYPE = np.dtype(
    [
        ("threshold", "<f4"),
        ("feature", "<i4"),
        ("child", "<i4"),
        ("mode", "<i1"),
        ("missing_true", "<i1"),
    ],
    align=True,
)
"""One tree node in 16 bytes, so four share a cache line.

Nodes are laid out so that a branch's true child is ``child`` and its false child
``child + 1``: a step of the walk is arithmetic on the comparison, not a jump the CPU
must guess. A leaf's ``child`` is itself, so extra steps stay on it. ``missing_true``
sends a NaN feature to the true child (ONNX ``nodes_missing_value_tracks_true``).
"""

TREE_WEIGHT_DTYPE = np.dtype([("output", "<i8"), ("value", "<f8")], align=True)
"""One leaf weight: the output (class or target) it adds to and the amount (a float32 value, widened)."""

LINEAR_PARAMS_DTYPE = np.dtype(
    [
        ("n_features", "<i8"),
        ("n_outputs", "<i8"),
        ("transform", "<i8"),
        ("normalize", "<i8"),
    ],
    align=True,
)
"""One record per linear model: sizes, ``Transform`` (IDENTITY, LOGISTIC or SOFTMAX) and ``Normalize``."""
