"""Training: every model type fits, scores each split, exports to ONNX that carries its features, and keeps parity."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from lifecycle_cases import FEATURES, LABEL, SMALL, dataset, onnx_of, trained
from sklearn.linear_model import LogisticRegression

from models.dataset import SPLITS, Dataset
from models.inference import check_compiled_parity
from models.metadata import FEATURE_SET_HASH, GRAPH_NAME, embed_spec, model_features, read_spec
from models.onnx_export import check_onnx_parity, export_onnx
from models.training import build_estimator, fit, holdout_rows, train


@pytest.mark.parametrize("model_type", sorted(SMALL))
def test_each_model_type_learns_and_is_scored_on_every_split(model_type):
    metrics = trained(model_type).metrics
    for split in SPLITS:
        for key in ("rows", "up_fraction", "accuracy", "log_loss", "roc_auc", "edge_bp"):
            assert np.isfinite(metrics[f"{split}_{key}"]), f"{split}_{key}"
        assert metrics[f"{split}_rows"] == dataset().splits[split].stop - dataset().splits[split].start
    assert metrics["test_roc_auc"] > 0.55, "the synthetic market's order flow predicts the next mid moves"


@pytest.mark.parametrize("model_type", sorted(SMALL))
def test_export_carries_the_feature_set_and_keeps_parity_with_native_and_compiled(model_type):
    model = trained(model_type).model
    X = holdout_rows(dataset(), 500)
    onnx_bytes = onnx_of(model)
    assert check_onnx_parity(model, onnx_bytes, X).passed
    assert check_compiled_parity(onnx_bytes, X).passed
    spec = read_spec(onnx_bytes)
    assert spec.feature_set_hash == FEATURES.hash() and spec.label == LABEL
    assert model_features(onnx_bytes).columns == FEATURES.columns
    props = {p.key for p in onnx.ModelProto.FromString(onnx_bytes).metadata_props}
    assert {"native_model", "converter"} <= props, "the exporter's own entries are kept"


@pytest.mark.parametrize("model_type", sorted(SMALL))
def test_the_same_training_gives_the_same_onnx_bytes(model_type):
    again = train(dataset(), model_type, SMALL[model_type], seed=0).model
    first, second = onnx_of(trained(model_type).model), onnx_of(again)
    assert first == second
    assert onnx.ModelProto.FromString(first).graph.name == GRAPH_NAME


def test_logistic_regression_reads_raw_features_with_the_standardization_folded_in():
    X, y = dataset().split("train")
    folded = fit("logistic_regression", SMALL["logistic_regression"], 0, X, y)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0.0] = 1.0
    plain = LogisticRegression(C=1.0, max_iter=500, random_state=0).fit((X - mean) / scale, y)
    Xt, _ = dataset().split("test")
    np.testing.assert_allclose(folded.predict_proba(Xt), plain.predict_proba((Xt - mean) / scale), rtol=0, atol=1e-12)


def test_holdout_rows_spread_over_the_test_split():
    X_test, _ = dataset().split("test")
    rows = holdout_rows(dataset(), 7)
    assert len(rows) == 7
    np.testing.assert_array_equal(rows[0], X_test[0])
    np.testing.assert_array_equal(rows[-1], X_test[-1])
    assert len(holdout_rows(dataset(), 10**9)) == len(X_test)
    with pytest.raises(ValueError, match=r"model\.parity_rows: must be positive, got 0"):
        holdout_rows(dataset(), 0)


@pytest.mark.parametrize(
    "model_type, params, message",
    [
        ("random_forest", {}, r"model\.type: 'random_forest' is not one of"),
        ("gradient_boosting", {"n_trees": 5}, r"model\.params: gradient_boosting does not take \['n_trees'\]"),
    ],
)
def test_bad_model_config_names_the_key(model_type, params, message):
    with pytest.raises(ValueError, match=message):
        build_estimator(model_type, params, seed=0)


def test_a_training_split_of_one_class_is_refused():
    ds = dataset()
    one_class = Dataset(ds.X, np.ones_like(ds.y), ds.forward_return, ds.ts_ns, ds.event_index, ds.columns, ds.splits)
    with pytest.raises(ValueError, match="only one class"):
        train(one_class, "logistic_regression", {}, seed=0)


def test_a_model_without_its_feature_set_or_with_a_stale_hash_is_refused():
    plain = export_onnx(trained("logistic_regression").model, len(FEATURES.columns))
    with pytest.raises(ValueError, match="no pipeline_trader.feature_set"):
        model_features(plain)
    proto = onnx.ModelProto.FromString(embed_spec(plain, FEATURES, LABEL))
    for prop in proto.metadata_props:
        if prop.key == FEATURE_SET_HASH:
            prop.value = "0" * 64
    with pytest.raises(ValueError, match="retrain the model"):
        model_features(proto.SerializeToString())
