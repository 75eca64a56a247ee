"""Promotion gates judge evidence, and MLflow keeps the training and every promotion attempt."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from lifecycle_cases import FEATURES, dataset, onnx_of, trained, training_run
from mlflow import MlflowClient

from models.promotion import (
    GateResult,
    PromotionRefused,
    Thresholds,
    backtest_gate,
    decide,
    determinism_gate,
    not_evaluated,
    parity_gate,
)
from models.registry import RegistryStore, log_onnx_model
from models.tracking import load_training_artifacts, log_promotion, log_training
from models.training import holdout_rows, train

THRESHOLDS = Thresholds(min_sharpe=1.0, min_total_return=0.0, max_drawdown=0.05, min_fills=10)
GOOD = {"sharpe": 2.5, "total_return": 0.01, "max_drawdown": 0.02, "n_fills": 40}


def test_backtest_gate_passes_when_every_figure_reaches_its_threshold():
    gate = backtest_gate(GOOD, THRESHOLDS)
    assert gate.passed and gate.metrics == {k: float(v) for k, v in GOOD.items()}


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("sharpe", 0.5, r"sharpe 0\.5 is not >= model\.promotion\.min_sharpe 1"),
        ("total_return", -0.001, r"total_return -0\.001 is not >= model\.promotion\.min_total_return 0"),
        ("max_drawdown", 0.2, r"max_drawdown 0\.2 is not <= model\.promotion\.max_drawdown 0\.05"),
        ("n_fills", 3, r"n_fills 3 is not >= model\.promotion\.min_fills 10"),
        ("sharpe", None, r"sharpe nan is not >= model\.promotion\.min_sharpe"),
    ],
)
def test_backtest_gate_fails_naming_the_figure_and_its_config_key(key, value, message):
    gate = backtest_gate({**GOOD, key: value}, THRESHOLDS)
    assert not gate.passed
    assert gate.detail.count("is not") == 1
    assert re.search(message, gate.detail), gate.detail


def test_determinism_gate_compares_journal_hashes():
    assert determinism_gate("ab", "ab").passed
    failed = determinism_gate("ab", "cd")
    assert not failed.passed and "ab then cd" in failed.detail
    assert not determinism_gate(None, None).passed


def test_parity_gate_passes_for_the_export_of_the_model_and_fails_for_another_model():
    model = trained("logistic_regression").model
    X = holdout_rows(dataset(), 300)
    gate = parity_gate(model, onnx_of(model), X, atol=1e-5, rtol=1e-5)
    assert gate.passed, gate.detail
    assert gate.metrics["rows"] == 300 and gate.metrics["onnx_max_abs_error"] < 1e-6
    other = train(dataset(), "logistic_regression", {"C": 1e-4}, seed=0).model
    refused = parity_gate(other, onnx_of(model), X, atol=1e-5, rtol=1e-5)
    assert not refused.passed and "ONNX parity FAILED" in refused.detail


def test_decide_names_every_failing_gate_and_passes_only_when_all_pass():
    ok = GateResult("onnx_parity", True, "fine")
    decide("signal", 3, "champion", [ok, determinism_gate("a", "a")])
    with pytest.raises(PromotionRefused) as info:
        decide("signal", 3, "champion", [ok, backtest_gate({**GOOD, "sharpe": 0.0}, THRESHOLDS),
                                         not_evaluated("determinism", "the backtest failed")])
    text = str(info.value)
    assert text.startswith("promotion of signal version 3 to @champion refused")
    assert "gate 'backtest' failed: sharpe 0" in text and "gate 'determinism' failed: not evaluated" in text
    assert "onnx_parity" not in text


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RegistryStore:
    return RegistryStore.local(tmp_path_factory.mktemp("mlruns"))


def test_a_training_run_records_params_metrics_artifacts_and_what_promotion_reads_back(store, tmp_path):
    run = training_run("xgboost")
    registered = log_training(run, onnx_of(run.native_model), "signal", store=store, experiment="signal")
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    mlrun = client.get_run(registered.run_id)
    params, metrics = mlrun.data.params, mlrun.data.metrics
    assert params["model_type"] == "xgboost" and params["param.n_estimators"] == "20"
    assert params["feature_set_hash"] == FEATURES.hash() and params["features"] == "microstructure"
    assert params["data_sha256"] == "d" * 64 and params["data_end"] == "2024-01-01T12:00:00.000000000Z"
    assert params["label_horizon_ns"] == "10000000000" and params["split_validation"] == "0.2"
    assert metrics["test_roc_auc"] == run.metrics["test_roc_auc"] and metrics["onnx_parity_passed"] == 1.0
    assert mlrun.info.run_name == f"train signal v{registered.version}"
    version = client.get_model_version("signal", str(registered.version))
    assert version.tags["parity"] == "passed" and version.tags["feature_set_hash"] == FEATURES.hash()
    folder = Path(client.download_artifacts(registered.run_id, "training", str(tmp_path)))
    assert yaml.safe_load((folder / "feature_set.yaml").read_text())["name"] == "microstructure"
    assert "passed" in (folder / "parity.txt").read_text()
    artifacts = load_training_artifacts("signal", registered.version, store=store)
    np.testing.assert_array_equal(artifacts.X_holdout, run.X_holdout)
    np.testing.assert_array_equal(artifacts.native_model.predict_proba(run.X_holdout),
                                  run.native_model.predict_proba(run.X_holdout))
    assert artifacts.data_end_ns == run.data.end_ns


def test_a_version_registered_without_training_artifacts_names_the_run(store):
    bare = log_onnx_model(onnx_of(trained("logistic_regression").model), "bare", store=store)
    with pytest.raises(FileNotFoundError, match=rf"run {bare.run_id} has no training/"):
        load_training_artifacts("bare", bare.version, store=store)


def test_a_promotion_attempt_is_a_run_with_every_gate_and_tags_the_version(store, tmp_path):
    run = training_run("logistic_regression")
    registered = log_training(run, onnx_of(run.native_model), "promo", store=store, experiment="promo")
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text("{}")
    gates = [GateResult("onnx_parity", True, "ok", {"onnx_max_abs_error": 1e-8}),
             backtest_gate({**GOOD, "sharpe": math.nan}, THRESHOLDS), determinism_gate("h", "h")]
    run_id = log_promotion("promo", registered.version, "champion", gates, {"period_start": "x"}, report,
                           store=store, experiment="promo")
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    mlrun = client.get_run(run_id)
    assert mlrun.data.tags["kind"] == "promotion" and mlrun.data.tags["decision"] == "refused"
    assert mlrun.data.tags["failed_gates"] == "backtest"
    assert mlrun.data.metrics["gate.onnx_parity.passed"] == 1.0 and mlrun.data.metrics["gate.backtest.passed"] == 0.0
    assert mlrun.data.metrics["gate.onnx_parity.onnx_max_abs_error"] == 1e-8
    assert "gate.backtest.sharpe" not in mlrun.data.metrics, "undefined figures are left out of the metrics"
    assert {a.path for a in client.list_artifacts(run_id)} == {"backtest", "gates.json"}
    assert mlrun.info.experiment_id == client.get_run(registered.run_id).info.experiment_id
    tags = client.get_model_version("promo", str(registered.version)).tags
    assert tags["promotion_champion"] == "refused" and tags["promotion_champion_run_id"] == run_id
