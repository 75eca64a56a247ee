"""MLflow records of a model's life: the training run that registered a version, and each promotion.

A training run (``log_training``) is the run ``models.registry.log_onnx_model`` creates
for the new version, with the training's parameters (model type, hyper-parameters,
feature set and its hash, label, splits, data range and the data's hash), its metrics
on each split and its parity checks, and these artifacts beside the ONNX model:

    training/native_model.joblib   the fitted scikit-learn or XGBoost estimator
    training/holdout.npy           the held-out feature rows parity was checked on
    training/feature_set.yaml      the feature set (also inside the ONNX file)
    training/dataset.json          rows and time range of each split, data range and hash
    training/parity.txt            both parity results in words

The native model and the held-out rows are what the promotion's parity gate checks
the registered file against (``load_training_artifacts``). They are read back with
joblib, which unpickles: load only from a registry you trust, as with any pickled model.

A promotion run (``log_promotion``) goes to the same experiment, tagged
``kind=promotion``, with every gate's verdict and figures and the out-of-sample
backtest's report as artifacts; the model version gets ``promotion_<alias>`` (promoted
or refused) and the run's id.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import yaml
from mlflow.entities import Metric, Param

from framework.features import FeatureSet
from models.dataset import SPLITS, Dataset, LabelSpec, SplitSpec
from models.inference import CompiledParity
from models.onnx_export import ParityResult
from models.promotion import GateResult
from models.registry import RegisteredOnnx, RegistryStore, _experiment_id, _quiet_mlflow, log_onnx_model

TRAINING_DIR = "training"
NATIVE_FILE = "native_model.joblib"
HOLDOUT_FILE = "holdout.npy"
DATASET_FILE = "dataset.json"


@dataclass(frozen=True)
class DataRange:
    """The events a dataset was built from: a description, first and last ``ts_event``, count and hash."""

    description: str
    start_ns: int
    end_ns: int
    n_events: int
    sha256: str


@dataclass(frozen=True)
class TrainingRun:
    """What one training produced and what it was made from."""

    model_type: str
    hyperparameters: Mapping[str, Any]
    seed: int
    features: FeatureSet
    label: LabelSpec
    splits: SplitSpec
    data: DataRange
    dataset: Dataset
    metrics: dict[str, float]
    onnx_parity: ParityResult
    compiled_parity: CompiledParity
    native_model: Any
    X_holdout: np.ndarray


def iso(ts_ns: int) -> str:
    """Format nanoseconds since the epoch as a UTC ISO time (what MLflow params and reports show)."""
    return str(np.datetime64(int(ts_ns), "ns")) + "Z"


def log_training(
    run: TrainingRun, onnx_bytes: bytes, name: str, *, store: RegistryStore, experiment: str
) -> RegisteredOnnx:
    """Register ``onnx_bytes`` as the next version of ``name`` and record the training in its run."""
    params = {
        "model_type": run.model_type,
        "seed": run.seed,
        **{f"param.{k}": v for k, v in sorted(run.hyperparameters.items())},
        "features": run.features.name,
        "feature_set_hash": run.features.hash(),
        "n_features": len(run.features.columns),
        "label_horizon_ns": run.label.horizon_ns,
        "label_price": run.label.price,
        **{f"split_{s}": getattr(run.splits, s) for s in SPLITS},
        "data": run.data.description,
        "data_start": iso(run.data.start_ns),
        "data_end": iso(run.data.end_ns),
        "data_events": run.data.n_events,
        "data_sha256": run.data.sha256,
    }
    metrics = {
        **run.metrics,
        "onnx_parity_passed": float(run.onnx_parity.passed),
        "onnx_parity_max_abs_error": run.onnx_parity.max_abs_error,
        "compiled_parity_passed": float(run.compiled_parity.passed),
        "compiled_parity_max_abs_error": run.compiled_parity.max_abs_error,
    }
    parity = "passed" if run.onnx_parity.passed and run.compiled_parity.passed else "failed"
    tags = {
        "model_type": run.model_type,
        "feature_set_hash": run.features.hash(),
        "data_sha256": run.data.sha256,
        "parity": parity,
    }
    registered = log_onnx_model(
        onnx_bytes, name, store=store, params=params, metrics=metrics, tags=tags, experiment=experiment
    )
    with tempfile.TemporaryDirectory() as tmp, _quiet_mlflow():
        folder = Path(tmp)
        joblib.dump(run.native_model, folder / NATIVE_FILE)
        np.save(folder / HOLDOUT_FILE, run.X_holdout)
        spec = {"name": run.features.name, "features": [f.canonical() for f in run.features.features]}
        (folder / "feature_set.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        (folder / DATASET_FILE).write_text(json.dumps(dataset_summary(run), indent=2) + "\n")
        (folder / "parity.txt").write_text(f"{run.onnx_parity}\n{run.compiled_parity}\n")
        client = store.client()
        client.log_artifacts(registered.run_id, tmp, TRAINING_DIR)
        client.set_tag(registered.run_id, "mlflow.runName", f"train {name} v{registered.version}")
    return registered


def dataset_summary(run: TrainingRun) -> dict[str, Any]:
    """Return the dataset's rows and time range per split, with the data range and hash."""
    ds = run.dataset
    splits = {}
    for s in SPLITS:
        rows = ds.splits[s]
        ts = ds.ts_ns[rows]
        splits[s] = {"rows": rows.stop - rows.start, "first": iso(ts[0]), "last": iso(ts[-1])}
    return {
        "data": run.data.description,
        "data_start": iso(run.data.start_ns),
        "data_end": iso(run.data.end_ns),
        "data_start_ns": run.data.start_ns,
        "data_end_ns": run.data.end_ns,
        "data_events": run.data.n_events,
        "data_sha256": run.data.sha256,
        "label": {"horizon_ns": run.label.horizon_ns, "price": run.label.price},
        "columns": list(ds.columns),
        "splits": splits,
    }


@dataclass(frozen=True)
class TrainingArtifacts:
    """What promotion reads back from a version's training run: the native model, the held-out rows
    and the last ``ts_event`` of the data it was trained on."""

    native_model: Any
    X_holdout: np.ndarray
    data_end_ns: int


def load_training_artifacts(name: str, version: int, *, store: RegistryStore) -> TrainingArtifacts:
    """Read back what ``log_training`` logged with ``name`` version ``version``.

    Raise FileNotFoundError when the version's run has none of it (it was not registered
    by ``mode=train``), naming the run.
    """
    with _quiet_mlflow(), tempfile.TemporaryDirectory() as tmp:
        client = store.client()
        run_id = client.get_model_version(name, str(version)).run_id
        names = {Path(a.path).name for a in client.list_artifacts(run_id, TRAINING_DIR)}
        missing = sorted({NATIVE_FILE, HOLDOUT_FILE, DATASET_FILE} - names)
        if missing:
            raise FileNotFoundError(
                f"{name} version {version}: run {run_id} has no {', '.join(f'{TRAINING_DIR}/{m}' for m in missing)} "
                "(register models with mode=train)"
            )
        folder = Path(client.download_artifacts(run_id, TRAINING_DIR, tmp))
        summary = json.loads((folder / DATASET_FILE).read_text())
        return TrainingArtifacts(
            joblib.load(folder / NATIVE_FILE), np.load(folder / HOLDOUT_FILE), int(summary["data_end_ns"])
        )


def log_promotion(
    name: str,
    version: int,
    alias: str,
    gates: list[GateResult],
    params: Mapping[str, Any],
    report_dir: Path | None,
    *,
    store: RegistryStore,
    experiment: str,
) -> str:
    """Record a promotion attempt: a run with each gate's verdict, figures and the backtest report; tag the version.

    Return the run's id.
    """
    promoted = all(g.passed for g in gates)
    decision = "promoted" if promoted else "refused"
    failed = ",".join(g.name for g in gates if not g.passed)
    with _quiet_mlflow():
        client = store.client()
        run = client.create_run(
            _experiment_id(client, experiment, store),
            run_name=f"promote {name} v{version} to @{alias}",
            tags={"kind": "promotion", "model_name": name, "model_version": str(version), "alias": alias,
                  "decision": decision, "failed_gates": failed or "none"},
        )
        run_id = run.info.run_id
        now_ms = int(time.time() * 1000)
        metrics = [Metric(f"gate.{g.name}.passed", float(g.passed), now_ms, 0) for g in gates]
        metrics += [Metric(f"gate.{g.name}.{k}", float(v), now_ms, 0) for g in gates for k, v in g.metrics.items()
                    if np.isfinite(v)]
        client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
        client.log_text(run_id, json.dumps([_gate_json(g) for g in gates], indent=2) + "\n", "gates.json")
        if report_dir is not None:
            client.log_artifacts(run_id, str(report_dir), "backtest")
        client.set_terminated(run_id)
        client.set_model_version_tag(name, str(version), f"promotion_{alias}", decision)
        client.set_model_version_tag(name, str(version), f"promotion_{alias}_run_id", run_id)
    return run_id


def _gate_json(gate: GateResult) -> dict[str, Any]:
    return {"gate": gate.name, "passed": gate.passed, "detail": gate.detail,
            "metrics": {k: (v if np.isfinite(v) else None) for k, v in gate.metrics.items()}}
