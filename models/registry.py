"""The model registry: log ONNX models to MLflow, move aliases, load by alias with version and hash.

Promotion moves an alias (``champion``) from one registered version to another; live
and backtests load ``models:/NAME@ALIAS`` and must record exactly which model they
ran, so ``load_onnx`` returns the resolved version and the SHA-256 of the ONNX file
with its bytes. The hash is also stored as the version's ``onnx_sha256`` tag when the
model is logged, and checked on every load: a file that changed under the registry
fails loudly instead of trading.

The store is local by default: an SQLite file and an artifact folder under
``mlruns/`` (no server), or whatever ``MLFLOW_TRACKING_URI`` names. Every function
takes a ``RegistryStore`` to point elsewhere. The functions use an ``MlflowClient``
bound to that store, never MLflow's process-wide tracking URI, so two stores can be
used side by side (tests do).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow.onnx
import onnx
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities import Metric, Param

DEFAULT_DIRECTORY = Path("mlruns")
EXPERIMENT = "models"
ARTIFACT_PATH = "model"
ONNX_FILE = "model.onnx"
HASH_TAG = "onnx_sha256"
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class RegistryStore:
    """Where MLflow keeps runs and registered models.

    ``artifact_location`` is where a new experiment stores its files; None lets the
    tracking server decide. With an SQLite store MLflow would otherwise put them in
    ``./mlruns`` of whatever the current directory is.
    """

    tracking_uri: str
    artifact_location: str | None = None

    @classmethod
    def local(cls, directory: Path | str = DEFAULT_DIRECTORY) -> RegistryStore:
        """Use ``directory/mlflow.db`` (SQLite) and ``directory/artifacts``, creating the directory."""
        root = Path(directory).resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri())

    @classmethod
    def default(cls) -> RegistryStore:
        """Use ``MLFLOW_TRACKING_URI`` when it is set, the local store under ``mlruns/`` otherwise."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        return cls(uri) if uri else cls.local()

    def client(self) -> MlflowClient:
        """Return a client for this store's tracking server and model registry."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


@dataclass(frozen=True)
class RegisteredOnnx:
    """A registered model version: what ``log_onnx_model`` created."""

    name: str
    version: int
    sha256: str
    run_id: str


@dataclass(frozen=True)
class LoadedOnnx:
    """An ONNX model loaded from the registry, with what a report or journal must record.

    ``uri`` is the one asked for (``models:/NAME@ALIAS``), ``version`` the version it
    resolved to at load time and ``sha256`` the hash of ``onnx_bytes``.
    """

    uri: str
    name: str
    version: int
    sha256: str
    onnx_bytes: bytes


def _pip_requirements() -> list[str]:
    """What serving an ONNX model needs, pinned to the versions that wrote it."""
    from importlib.metadata import version

    return [f"onnx=={version('onnx')}", f"onnxruntime=={version('onnxruntime')}"]


def log_onnx_model(
    onnx_bytes: bytes,
    name: str,
    *,
    store: RegistryStore | None = None,
    params: Mapping[str, object] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    experiment: str = EXPERIMENT,
) -> RegisteredOnnx:
    """Log an ONNX model in a new MLflow run and register it as the next version of ``name``.

    ``params`` and ``metrics`` go to the run (training settings, holdout scores,
    parity error); ``tags`` go to the model version, next to ``onnx_sha256``.
    """
    store = store or RegistryStore.default()
    with _quiet_mlflow():
        client = store.client()
        run = client.create_run(_experiment_id(client, experiment, store))
        run_id = run.info.run_id
        try:
            now_ms = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now_ms, 0) for k, v in (metrics or {}).items()],
                params=[Param(k, str(v)) for k, v in (params or {}).items()],
            )
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / ARTIFACT_PATH
                # Stated requirements: inferring them runs the model in a subprocess (5 s or more).
                mlflow.onnx.save_model(onnx.ModelProto.FromString(onnx_bytes), local, save_as_external_data=False,
                                       pip_requirements=_pip_requirements())
                sha256 = _sha256((local / ONNX_FILE).read_bytes())
                client.log_artifacts(run_id, str(local), ARTIFACT_PATH)
            if not client.search_registered_models(filter_string=f"name = '{name}'"):
                client.create_registered_model(name)
            version = client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
                run_id=run_id,
                tags={**(tags or {}), HASH_TAG: sha256},
            )
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
    return RegisteredOnnx(name=name, version=int(version.version), sha256=sha256, run_id=run_id)


def set_alias(name: str, alias: str, version: int, *, store: RegistryStore | None = None) -> None:
    """Point ``models:/name@alias`` at ``version`` (promotion moves ``champion`` this way)."""
    store = store or RegistryStore.default()
    with _quiet_mlflow():
        store.client().set_registered_model_alias(name, alias, str(version))


def load_onnx(uri: str, *, store: RegistryStore | None = None) -> LoadedOnnx:
    """Load ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: the ONNX bytes, the version and its hash.

    The alias is resolved once and the files of that version are read, so a
    concurrent promotion cannot mix two versions. Raise ValueError for another kind
    of URI and RuntimeError when the file's hash differs from the one registered.
    """
    match = _URI.match(uri)
    if match is None:
        raise ValueError(f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {uri!r}")
    store = store or RegistryStore.default()
    name = match["name"]
    with _quiet_mlflow():
        client = store.client()
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
        with tempfile.TemporaryDirectory() as tmp:
            path = download_artifacts(
                artifact_uri=f"{version.source}/{ONNX_FILE}",
                dst_path=tmp,
                tracking_uri=store.tracking_uri,
                registry_uri=store.tracking_uri,
            )
            onnx_bytes = Path(path).read_bytes()
    sha256 = _sha256(onnx_bytes)
    registered = version.tags.get(HASH_TAG)
    if registered is not None and registered != sha256:
        raise RuntimeError(
            f"{uri} (version {version.version}): {ONNX_FILE} has sha256 {sha256}, registered as {registered}"
        )
    return LoadedOnnx(uri=uri, name=name, version=int(version.version), sha256=sha256, onnx_bytes=onnx_bytes)


def _experiment_id(client: MlflowClient, name: str, store: RegistryStore) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=store.artifact_location)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Hide MLflow's chatter: INFO logs (schema migrations, "Created version 2"), download
    progress bars and deprecation warnings raised inside MLflow and its database layer.

    Logged warnings and errors still show, other warnings too, and exceptions propagate.
    """
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    progress_bar = os.environ.get(_PROGRESS_BAR)
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    os.environ[_PROGRESS_BAR] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mlflow|sqlalchemy|alembic)\.")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if progress_bar is None:
            del os.environ[_PROGRESS_BAR]
        else:
            os.environ[_PROGRESS_BAR] = progress_bar
