"""ONNX exports equal the native scikit-learn and XGBoost models, and the parity check says when not."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from model_cases import MODELS, N_FEATURES, N_TRAIN, case, dataset, run_onnxruntime, with_nans
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from xgboost import XGBClassifier, XGBRegressor

from models.onnx_export import OnnxParityError, check_onnx_parity, export_onnx


@pytest.mark.parametrize("name", list(MODELS))
def test_export_matches_native_model(name):
    c = case(name)
    result = check_onnx_parity(c.model, c.onnx_bytes, c.X_holdout).raise_if_failed()
    assert result.passed and result.n_failed_rows == 0 and result.label_mismatches == 0
    assert result.max_abs_error < 1e-5
    assert result.output == ("probabilities" if c.classifier else "prediction")


@pytest.mark.parametrize("name", list(MODELS))
def test_export_has_float32_input_and_plain_tensor_outputs(name):
    model = onnx.ModelProto.FromString(case(name).onnx_bytes)
    (graph_input,) = model.graph.input
    assert graph_input.name == "X"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph_input.type.tensor_type.shape.dim[1].dim_value == N_FEATURES
    assert all(output.type.HasField("tensor_type") for output in model.graph.output)  # no ZipMap
    assert "ZipMap" not in {node.op_type for node in model.graph.node}


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0, n_jobs=1),
        lambda: RandomForestRegressor(n_estimators=20, max_depth=5, random_state=0, n_jobs=1),
        lambda: XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1),
        lambda: XGBRegressor(n_estimators=20, max_depth=4, n_jobs=1),
    ],
    ids=["forest_classifier", "forest_regressor", "xgb_classifier", "xgb_regressor"],
)
@pytest.mark.parametrize("nan_in_training", [False, True])
def test_missing_values_go_where_the_native_model_sends_them(make, nan_in_training):
    X, y = dataset("binary" if make().__class__.__name__.endswith("Classifier") else "regression")
    X = with_nans(X, 0.15)
    train = X[:N_TRAIN] if nan_in_training else np.nan_to_num(X[:N_TRAIN], nan=0.0)
    model = make().fit(train, y[:N_TRAIN])
    onnx_bytes = export_onnx(model, N_FEATURES)
    check_onnx_parity(model, onnx_bytes, X[N_TRAIN:]).raise_if_failed()


def test_xgboost_trained_on_named_columns_exports():
    X, y = dataset("binary")
    columns = [f"feature_{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(X, columns=columns)
    model = XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(frame[:N_TRAIN], y[:N_TRAIN])
    onnx_bytes = export_onnx(model, N_FEATURES)
    check_onnx_parity(model, onnx_bytes, frame[N_TRAIN:]).raise_if_failed()
    assert model.get_booster().feature_names == columns  # the caller's model is left as it was


def test_unsupported_model_type_is_refused_with_the_supported_list():
    X, y = dataset("binary")
    with pytest.raises(TypeError, match="HistGradientBoostingClassifier.*supported: LogisticRegression"):
        export_onnx(HistGradientBoostingClassifier(max_iter=3).fit(X, y), N_FEATURES)


def test_wrong_feature_count_is_refused():
    X, y = dataset("regression")
    with pytest.raises(ValueError, match="fitted on 6 features, not 5"):
        export_onnx(LinearRegression().fit(X, y), 5)


class OneRowOff:
    """A native regressor whose prediction for one row is moved by ``delta``."""

    def __init__(self, model, row: int, delta: float):
        self.model, self.row, self.delta = model, row, delta

    def predict(self, X):
        y = self.model.predict(X).copy()
        y[self.row] += self.delta
        return y


@pytest.mark.parametrize("delta", [1e-3, np.nan])
def test_parity_failure_names_the_worst_row(delta):
    c = case("linear")
    result = check_onnx_parity(OneRowOff(c.model, 17, delta), c.onnx_bytes, c.X_holdout)
    assert not result.passed
    assert (result.n_failed_rows, result.worst_row) == (1, 17)
    assert result.features == tuple(c.X_holdout[17])
    assert result.onnx == pytest.approx(tuple(run_onnxruntime(c.onnx_bytes, c.X_holdout[17:18])[0].ravel()))
    with pytest.raises(OnnxParityError, match=r"FAILED on 1 of 200 rows.*worst row 17: native \["):
        result.raise_if_failed()


def test_parity_tolerance_is_the_callers_to_widen():
    c = case("linear")
    off = OneRowOff(c.model, 3, 1e-3)
    assert not check_onnx_parity(off, c.onnx_bytes, c.X_holdout).passed
    assert check_onnx_parity(off, c.onnx_bytes, c.X_holdout, atol=1e-2).passed


def test_parity_counts_predicted_labels_that_differ():
    c = case("logistic_binary")
    other = RandomForestClassifier(n_estimators=5, max_depth=2, random_state=1, n_jobs=1)
    X, y = dataset("binary")
    other.fit(X[:N_TRAIN], 1 - y[:N_TRAIN])  # predicts the opposite class
    result = check_onnx_parity(other, c.onnx_bytes, c.X_holdout)
    assert not result.passed and result.label_mismatches > 0
    assert "predicted labels differ" in str(result)
