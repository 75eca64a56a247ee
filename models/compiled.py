"""Compile an ONNX model into arrays and a Numba kernel that a strategy calls inside ``step``.

``compile_onnx(onnx_bytes)`` reads the graph (``models.onnx_graph``), builds the flat
arrays of its family and pairs them with that family's kernel. A strategy keeps
``model.arrays`` and a float64 scratch row of ``model.n_outputs`` in the state its
``make`` returns and calls ``model.kernel(arrays, features, scratch)`` once per
decision: a few microseconds for a hundred trees of depth six, with no allocation and
no Python. ``model.predict(X)`` evaluates many rows for research and checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.compiled_linear import LinearArrays, linear_arrays, predict_linear, predict_linear_rows
from models.compiled_trees import (
    TreeEnsembleArrays,
    predict_tree_ensemble,
    predict_tree_ensemble_rows,
    tree_ensemble_arrays,
)
from models.onnx_graph import read_graph


@dataclass(frozen=True)
class CompiledModel:
    """An ONNX model as arrays plus the kernels that evaluate it.

    ``kernel(arrays, x, out)`` evaluates one float64 row ``x`` of ``n_features`` into
    ``out[:n_outputs]``: class probabilities in the order of ``labels`` for a classifier
    (``labels`` is None for a regressor), the targets for a regressor.
    ``rows_kernel(arrays, X, out)`` does the same for every row of a 2-D ``X``.
    """

    arrays: TreeEnsembleArrays | LinearArrays
    kernel: Any
    rows_kernel: Any
    n_features: int
    n_outputs: int
    labels: tuple[Any, ...] | None

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Evaluate each row of ``X`` (n_rows x n_features); return n_rows x n_outputs float64."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n_rows, {self.n_features}), got {X.shape}")
        out = np.empty((X.shape[0], self.n_outputs), np.float64)
        self.rows_kernel(self.arrays, X, out)
        return out


def compile_onnx(onnx_bytes: bytes) -> CompiledModel:
    """Compile a model exported by ``models.onnx_export``; raise ``UnsupportedModelError`` naming what is not."""
    graph = read_graph(onnx_bytes)
    if graph.node.op_type.startswith("TreeEnsemble"):
        arrays, labels = tree_ensemble_arrays(graph)
        kernel, rows_kernel = predict_tree_ensemble, predict_tree_ensemble_rows
    else:
        arrays, labels = linear_arrays(graph)
        kernel, rows_kernel = predict_linear, predict_linear_rows
    n_outputs = int(arrays.params[0]["n_outputs"])
    return CompiledModel(arrays, kernel, rows_kernel, graph.n_features, n_outputs, labels)
