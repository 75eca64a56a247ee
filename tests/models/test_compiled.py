"""The compiled kernels give onnxruntime's outputs: every model type, node mode, transform and NaN rule.

Rows are the held-out rows, the same with NaNs, and rows whose features sit exactly on
a tree threshold or one float64 step above it (which rounds back onto the threshold
in float32: the branch must follow the float32 comparison, as onnxruntime's does).
Hypothesis draws further rows from thresholds, their float32 neighbours, NaN,
infinities and ordinary values.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_cases import (
    MODELS,
    N_FEATURES,
    TREE_MODELS,
    case,
    dataset,
    edit_predictor,
    predictor_attribute,
    run_onnxruntime,
    scores,
    with_nans,
)
from numba import njit
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from framework.jit import KERNEL
from models.compiled import CompiledModel, compile_onnx
from models.enums import NodeMode, Transform
from models.onnx_graph import UnsupportedModelError
from models.scores import best_class

TOLERANCE = {"rtol": 1e-6, "atol": 1e-6}
"""float64 sums against onnxruntime's float32 sums of at most 45 small leaf weights."""

MODES = [b"BRANCH_LEQ", b"BRANCH_LT", b"BRANCH_GTE", b"BRANCH_GT", b"BRANCH_EQ", b"BRANCH_NEQ"]


def threshold_values(compiled: CompiledModel) -> list[np.ndarray]:
    """Per feature: its thresholds, their float32 neighbours and the next float64 above each."""
    nodes = compiled.arrays.nodes
    values: list[np.ndarray] = []
    for f in range(compiled.n_features):
        t = nodes["threshold"][(nodes["mode"] != NodeMode.LEAF) & (nodes["feature"] == f)]
        up, down = np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))
        t64 = t.astype(np.float64)
        values.append(np.unique(np.concatenate([t64, up, down, np.nextafter(t64, np.inf), np.nextafter(t64, -np.inf)])))
    return values


def probe_rows(compiled: CompiledModel, X: np.ndarray) -> np.ndarray:
    """Held-out rows, the same with NaNs, and rows with one feature on or just above a threshold."""
    rows = [X, with_nans(X)]
    if hasattr(compiled.arrays, "nodes"):
        nodes = compiled.arrays.nodes
        branches = np.flatnonzero(nodes["mode"] != NodeMode.LEAF)
        for k, i in enumerate(branches):
            threshold = np.float64(nodes["threshold"][i])
            for value in (threshold, np.nextafter(threshold, np.inf)):
                row = X[k % len(X)].copy()
                row[nodes["feature"][i]] = value
                rows.append(row[None, :])
    return np.concatenate(rows)


def rows_strategy(compiled: CompiledModel) -> st.SearchStrategy:
    columns = []
    for values in threshold_values(compiled):
        choices = [st.floats(-4, 4), st.sampled_from([np.nan, np.inf, -np.inf])]
        if len(values):
            choices.insert(0, st.sampled_from(values.tolist()))
        columns.append(st.one_of(*choices))
    return st.lists(st.tuples(*columns), min_size=1, max_size=20).map(lambda rows: np.array(rows, np.float64))


@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_model_matches_onnxruntime(name):
    c = case(name)
    compiled = compile_onnx(c.onnx_bytes)
    X = probe_rows(compiled, c.X_holdout)
    np.testing.assert_allclose(compiled.predict(X), scores(c, X), **TOLERANCE)


@pytest.mark.parametrize("name", [name for name in MODELS if MODELS[name][1] in ("binary", "multiclass", "strings")])
def test_best_class_is_what_the_native_model_and_onnxruntime_predict(name):
    c = case(name)
    compiled = compile_onnx(c.onnx_bytes)
    probabilities = compiled.predict(c.X_holdout)
    labels = [compiled.labels[best_class(p, compiled.n_outputs)] for p in probabilities]
    assert labels == c.model.predict(c.X_holdout).tolist()
    assert labels == run_onnxruntime(c.onnx_bytes, c.X_holdout)[0].tolist()
    assert compiled.labels == tuple(c.model.classes_.tolist())


@pytest.mark.parametrize("name", TREE_MODELS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_trees_match_onnxruntime_on_thresholds_nan_and_infinity(name, data):
    c = case(name)
    compiled = compile_onnx(c.onnx_bytes)
    X = data.draw(rows_strategy(compiled))
    np.testing.assert_allclose(compiled.predict(X), scores(c, X), **TOLERANCE)


@pytest.mark.parametrize("mode", MODES + [b"mixed"], ids=lambda m: m.decode())
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_node_mode_and_missing_value_rule_matches_onnxruntime(mode, data):
    base = case("forest_multiclass").onnx_bytes
    modes = predictor_attribute(base, "nodes_modes")
    rng = np.random.default_rng(len(mode))
    branch_modes = [MODES[rng.integers(len(MODES))] if mode == b"mixed" else mode for _ in modes]
    tracks = rng.integers(0, 2, len(modes)).tolist()
    edited = edit_predictor(
        base,
        nodes_modes=[m if m == b"LEAF" else branch_modes[i] for i, m in enumerate(modes)],
        nodes_missing_value_tracks_true=[t if m != b"LEAF" else 0 for t, m in zip(tracks, modes)],
    )
    compiled = compile_onnx(edited)
    X = data.draw(rows_strategy(compiled))
    np.testing.assert_allclose(compiled.predict(X), scores(edited, X), **TOLERANCE)


@pytest.mark.parametrize(
    ("name", "attributes", "transform"),
    [
        ("gbm_binary", {}, Transform.BINARY_LOGISTIC),
        ("xgb_binary", {}, Transform.BINARY_LOGISTIC),
        ("forest_binary", {}, Transform.BINARY_COMPLEMENT),
        ("gbm_binary", {"post_transform": "NONE"}, Transform.BINARY_NEGATE),
        ("gbm_multiclass", {}, Transform.SOFTMAX),
        ("gbm_multiclass", {"post_transform": "LOGISTIC"}, Transform.LOGISTIC),
        ("gbm_multiclass", {"post_transform": "NONE"}, Transform.IDENTITY),
        ("forest_multiclass", {"post_transform": "SOFTMAX"}, Transform.SOFTMAX),
        ("forest_regressor", {"aggregate_function": "AVERAGE"}, Transform.IDENTITY),
        ("logistic_binary", {}, Transform.LOGISTIC),
        ("logistic_multiclass", {}, Transform.SOFTMAX),
        ("logistic_multiclass", {"post_transform": "LOGISTIC"}, Transform.LOGISTIC),
        ("logistic_multiclass", {"post_transform": "NONE"}, Transform.IDENTITY),
    ],
)
def test_post_transforms_base_values_and_aggregates_match_onnxruntime(name, attributes, transform):
    c = case(name)
    edited = edit_predictor(c.onnx_bytes, **attributes) if attributes else c.onnx_bytes
    compiled = compile_onnx(edited)
    assert compiled.arrays.params[0]["transform"] == transform
    X = probe_rows(compiled, c.X_holdout)
    np.testing.assert_allclose(compiled.predict(X), scores(edited, X), **TOLERANCE)


@njit(**KERNEL)
def _decide(kernel, model, x, out) -> int:
    """What a strategy does inside ``step``: score one row into scratch, pick a class."""
    kernel(model, x, out)
    return best_class(out, 2)


@pytest.mark.parametrize("name", ["gbm_binary", "xgb_binary", "forest_binary", "logistic_binary"])
def test_kernel_runs_inside_compiled_code_without_allocating(name):
    c = case(name)
    compiled = compile_onnx(c.onnx_bytes)
    scratch = np.zeros(compiled.n_outputs)
    decisions = [_decide(compiled.kernel, compiled.arrays, x, scratch) for x in c.X_holdout]
    assert decisions == compiled.predict(c.X_holdout).argmax(axis=1).tolist()


def test_best_class_takes_the_first_of_equal_probabilities():
    assert best_class(np.array([0.25, 0.5, 0.5]), 3) == 1


def test_predict_refuses_the_wrong_number_of_features():
    compiled = compile_onnx(case("linear").onnx_bytes)
    with pytest.raises(ValueError, match=r"shape \(n_rows, 6\)"):
        compiled.predict(np.zeros((3, 5)))


def _float32_export(model) -> bytes:
    """skl2onnx's default export, ZipMap included."""
    return convert_sklearn(model, initial_types=[("X", FloatTensorType([None, N_FEATURES]))]).SerializeToString()


def _scaler_pipeline() -> bytes:
    X, y = dataset("regression")
    return _float32_export(make_pipeline(StandardScaler(), LinearRegression()).fit(X, y))


def _all_modes(name: str, mode: bytes) -> bytes:
    onnx_bytes = case(name).onnx_bytes
    return edit_predictor(onnx_bytes, nodes_modes=[mode] * len(predictor_attribute(onnx_bytes, "nodes_modes")))


def _renamed_operator(op_type: str) -> bytes:
    model = onnx.ModelProto.FromString(case("forest_regressor").onnx_bytes)
    node = model.graph.node[0]
    node.op_type = op_type
    node.name = "my_trees"
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: _float32_export(case("logistic_binary").model),
            r"node 'ZipMap' \(ai.onnx.ml.ZipMap\): export classifiers with zipmap disabled",
        ),
        (_scaler_pipeline, r"node 'Scaler' \(ai.onnx.ml.Scaler\): this operator is not implemented"),
        (lambda: _renamed_operator("TreeEnsemble"), r"node 'my_trees' \(ai.onnx.ml.TreeEnsemble\): the ai.onnx.ml"),
        (
            lambda: edit_predictor(case("forest_binary").onnx_bytes, post_transform="PROBIT"),
            r"node 'TreeEnsembleClassifier' \(ai.onnx.ml.TreeEnsembleClassifier\): post_transform PROBIT",
        ),
        (
            lambda: edit_predictor(case("gbm_regressor").onnx_bytes, post_transform="LOGISTIC"),
            r"node 'TreeEnsembleRegressor' .*: post_transform LOGISTIC is not implemented for a regressor",
        ),
        (
            lambda: edit_predictor(case("gbm_regressor").onnx_bytes, aggregate_function="MAX"),
            r"node 'TreeEnsembleRegressor' .*: aggregate_function MAX",
        ),
        (
            lambda: _all_modes("forest_regressor", b"BRANCH_MEMBER"),
            r"node 'TreeEnsembleRegressor' .*: node mode 'BRANCH_MEMBER'",
        ),
        (
            lambda: edit_predictor(
                case("forest_regressor").onnx_bytes, nodes_values_as_tensor=onnx.numpy_helper.from_array(np.zeros(1))
            ),
            r"node 'TreeEnsembleRegressor' .*: attributes \['nodes_values_as_tensor'\]",
        ),
        (
            lambda: convert_sklearn(
                case("ridge").model, initial_types=[("X", DoubleTensorType([None, N_FEATURES]))]
            ).SerializeToString(),
            r"input 'X' is DOUBLE",
        ),
    ],
    ids=["zipmap", "scaler", "tree_ensemble_opset5", "probit", "regressor_logistic", "aggregate_max",
         "branch_member", "tensor_thresholds", "double_input"],
)
def test_unsupported_model_names_the_node(make, message):
    with pytest.raises(UnsupportedModelError, match=message):
        compile_onnx(make())
