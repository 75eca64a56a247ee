"""The registry against a local SQLite store: versions, the champion alias, load by alias with hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from mlflow import MlflowClient
from model_cases import case

from models.registry import RegistryStore, load_onnx, log_onnx_model, set_alias


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RegistryStore:
    return RegistryStore.local(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def two_versions(store):
    first = log_onnx_model(case("logistic_binary").onnx_bytes, "signal", store=store, params={"C": 1.0})
    second = log_onnx_model(
        case("gbm_binary").onnx_bytes, "signal", store=store, metrics={"auc": 0.71}, tags={"trained_on": "synthetic"}
    )
    return first, second


def test_each_log_registers_the_next_version(two_versions):
    first, second = two_versions
    assert (first.name, first.version, second.version) == ("signal", 1, 2)
    assert first.sha256 == hashlib.sha256(case("logistic_binary").onnx_bytes).hexdigest()
    assert second.sha256 == hashlib.sha256(case("gbm_binary").onnx_bytes).hexdigest()


def test_loading_by_alias_follows_the_alias_as_it_moves(store, two_versions):
    first, second = two_versions
    set_alias("signal", "champion", first.version, store=store)
    loaded = load_onnx("models:/signal@champion", store=store)
    assert (loaded.version, loaded.sha256) == (1, first.sha256)
    assert loaded.onnx_bytes == case("logistic_binary").onnx_bytes
    set_alias("signal", "champion", second.version, store=store)
    loaded = load_onnx("models:/signal@champion", store=store)
    assert (loaded.uri, loaded.name, loaded.version, loaded.sha256) == (
        "models:/signal@champion", "signal", 2, second.sha256,
    )
    assert loaded.onnx_bytes == case("gbm_binary").onnx_bytes


def test_loading_by_version_number(store, two_versions):
    assert load_onnx("models:/signal/1", store=store).sha256 == two_versions[0].sha256


def test_run_keeps_params_and_metrics_and_the_version_its_tags(store, two_versions):
    first, second = two_versions
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    assert client.get_run(first.run_id).data.params == {"C": "1.0"}
    assert client.get_run(second.run_id).data.metrics == {"auc": 0.71}
    tags = client.get_model_version("signal", "2").tags
    assert tags == {"trained_on": "synthetic", "onnx_sha256": second.sha256}


def test_store_keeps_runs_and_files_under_its_directory(store, two_versions):
    root = Path(store.tracking_uri.removeprefix("sqlite:///")).parent
    client = MlflowClient(tracking_uri=store.tracking_uri)
    for registered in two_versions:
        assert client.get_run(registered.run_id).info.artifact_uri.startswith(root.as_uri())
    assert len(list(root.rglob("model.onnx"))) == 2


def test_a_changed_file_fails_to_load(store, two_versions):
    first, _ = two_versions
    root = Path(store.tracking_uri.removeprefix("sqlite:///")).parent
    (path,) = [p for p in root.rglob("model.onnx") if first.run_id in str(p)]
    original = path.read_bytes()
    path.write_bytes(original + b"\x00")
    try:
        with pytest.raises(RuntimeError, match="models:/signal/1 \\(version 1\\): model.onnx has sha256"):
            load_onnx("models:/signal/1", store=store)
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize("uri", ["runs:/abc/model", "models:/signal", "models:/signal@", "models:/a/b/c"])
def test_other_uris_are_refused(store, uri):
    with pytest.raises(ValueError, match="expected models:/NAME@ALIAS or models:/NAME/VERSION"):
        load_onnx(uri, store=store)


def test_default_store_follows_mlflow_tracking_uri(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://registry.example:5000")
    assert RegistryStore.default() == RegistryStore("http://registry.example:5000")
