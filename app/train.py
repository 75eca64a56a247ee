"""The training runner (``mode=train``): data to dataset to model to ONNX to a registered version.

Reads the training period (``model.train_period``) of the data the backtest uses
(``data``), builds the labelled dataset with the model's feature set
(``models/dataset.py``), fits ``model.type`` (``models/training.py``), exports it to
ONNX with its feature set written inside (``models/metadata.py``), checks the ONNX
file against the native model and the compiled kernel against onnxruntime on held-out
test rows, and registers the file with everything MLflow should know about it
(``models/tracking.py``). The version is registered even when a parity check fails,
so the evidence is kept, but the run then fails and promotion will refuse it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from app.data_source import ROOT, period_ns, prepare
from app.model_source import check_out_of_sample, registry_store
from framework.features import FeatureSet
from models.dataset import SPLITS, LabelSpec, SplitSpec, build_dataset, data_hash, load_events
from models.inference import check_compiled_parity
from models.metadata import embed_spec
from models.onnx_export import OnnxParityError, check_onnx_parity, export_onnx
from models.tracking import DataRange, TrainingRun, iso, log_training
from models.training import holdout_rows, train

FEATURES_DIR = ROOT / "conf" / "features"


def load_feature_set(name: str) -> FeatureSet:
    """Load ``conf/features/<name>.yaml``, failing with the config key when there is no such set."""
    path = FEATURES_DIR / f"{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in FEATURES_DIR.glob("*.yaml"))
        raise ValueError(f"model.features: no feature set {path} (have {have})")
    return FeatureSet.from_yaml(path)


def run_train(cfg: DictConfig, out_dir: Path) -> dict:
    """Train and register one model version; write ``metrics.json`` into ``out_dir`` and return its metrics."""
    mc = cfg.model
    features = load_feature_set(str(mc.features))
    label = LabelSpec(int(mc.label.horizon_ns), mc.label.price.name)
    splits = SplitSpec(float(mc.splits.train), float(mc.splits.validation), float(mc.splits.test))
    check_out_of_sample(mc)
    start_ns, end_ns = period_ns(mc.train_period, "model.train_period")
    data = prepare(cfg.data)
    events = load_events(data.catalog, data.streams, start_ns, end_ns, int(cfg.chunk_rows))
    if len(events) == 0:
        raise ValueError(f"model.train_period: no events of {data.description} in [{mc.train_period.start}, "
                         f"{mc.train_period.end})")
    dataset = build_dataset(events, features, data.instruments[str(cfg.data.symbol)], label, splits)
    hyperparameters = OmegaConf.to_container(mc.params, resolve=True)
    trained = train(dataset, mc.type.name, hyperparameters, int(mc.seed))
    X_holdout = holdout_rows(dataset, int(mc.parity_rows))
    label_spec = {"target": "up", "horizon_ns": label.horizon_ns, "price": label.price}
    onnx_bytes = embed_spec(export_onnx(trained.model, len(features.columns)), features, label_spec)
    run = TrainingRun(
        model_type=mc.type.name,
        hyperparameters=hyperparameters,
        seed=int(mc.seed),
        features=features,
        label=label,
        splits=splits,
        data=DataRange(data.description, int(events["ts_event"][0]), int(events["ts_event"][-1]), len(events),
                       data_hash(events)),
        dataset=dataset,
        metrics=trained.metrics,
        onnx_parity=check_onnx_parity(trained.model, onnx_bytes, X_holdout, atol=float(mc.promotion.parity_atol),
                                      rtol=float(mc.promotion.parity_rtol)),
        compiled_parity=check_compiled_parity(onnx_bytes, X_holdout),
        native_model=trained.model,
        X_holdout=X_holdout,
    )
    store = registry_store(mc)
    registered = log_training(run, onnx_bytes, str(mc.name), store=store, experiment=str(mc.experiment))
    meta = {
        "model_uri": f"models:/{registered.name}/{registered.version}",
        "model_name": registered.name,
        "model_version": registered.version,
        "model_sha256": registered.sha256,
        "run_id": registered.run_id,
        "tracking_uri": store.tracking_uri,
        "experiment": str(mc.experiment),
        "feature_set_hash": features.hash(),
        "data_sha256": run.data.sha256,
    }
    metrics = {**trained.metrics, "onnx_parity_max_abs_error": run.onnx_parity.max_abs_error,
               "compiled_parity_max_abs_error": run.compiled_parity.max_abs_error, "meta": meta}
    (out_dir / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2, allow_nan=False) + "\n")
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    print(_summary(run, meta))
    if not (run.onnx_parity.passed and run.compiled_parity.passed):
        raise OnnxParityError(
            f"{meta['model_uri']} is registered (tagged parity=failed) but promotion will refuse it: "
            f"{run.onnx_parity}; {run.compiled_parity}"
        )
    return metrics


def _finite(value: Any) -> Any:
    """Map NaN (an undefined metric, such as ROC AUC on one class) to null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _summary(run: TrainingRun, meta: dict) -> str:
    ds = run.dataset
    lines = [
        f"model       {meta['model_uri']} ({run.model_type}), onnx sha256 {meta['model_sha256'][:16]}",
        (f"data        {run.data.description}: {iso(run.data.start_ns)} .. {iso(run.data.end_ns)}, "
         f"{run.data.n_events:,} events, sha256 {run.data.sha256[:16]}"),
        f"features    {run.features.name} ({len(ds.columns)} columns), hash {meta['feature_set_hash'][:16]}",
        f"label       up after {run.label.horizon_ns / 1e9:g} s ({run.label.price} price)",
        f"{'split':11s} {'rows':>8s} {'up %':>6s} {'accuracy':>9s} {'log loss':>9s} {'roc auc':>8s} {'edge bp':>8s}",
    ]
    m = run.metrics
    for s in SPLITS:
        lines.append(f"{s:11s} {m[f'{s}_rows']:8,.0f} {100 * m[f'{s}_up_fraction']:6.1f} {m[f'{s}_accuracy']:9.4f} "
                     f"{m[f'{s}_log_loss']:9.4f} {m[f'{s}_roc_auc']:8.4f} {m[f'{s}_edge_bp']:8.3f}")
    lines += [
        f"parity      {run.onnx_parity}",
        f"            {run.compiled_parity}",
        f"mlflow      run {meta['run_id']} in experiment {meta['experiment']!r} at {meta['tracking_uri']}",
    ]
    return "\n".join(lines)
