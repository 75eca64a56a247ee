"""What a model needs to be used correctly, written into its ONNX file.

A model is only right with the features it was trained on, in the same order, from
the same kernels. So the exported ONNX file carries its feature set (the canonical
spec), that set's hash and the label it learned, as ONNX ``metadata_props``. A
strategy builds its feature program from the file it loaded, never from a separate
config that could drift, and ``model_features`` refuses a file whose feature set no
longer hashes the same (an indicator's output changed: ``FORMAT_VERSION`` moved).
The registry's sha256 covers these entries too, so the version recorded in a report
names the features as well as the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import onnx

from framework.features import FeatureSet

PREFIX = "pipeline_trader."
FEATURE_SET = PREFIX + "feature_set"
FEATURE_SET_HASH = PREFIX + "feature_set_hash"
LABEL = PREFIX + "label"
GRAPH_NAME = "pipeline_trader_model"
"""The graph's name. Converters pick a random one (skl2onnx: a UUID); a fixed one makes the same
training give the same bytes, hence the same sha256 in the registry and in reports."""


@dataclass(frozen=True)
class ModelSpec:
    """The feature set (as config), its hash and the label (``target``, ``horizon_ns``, ``price``)."""

    feature_set: dict
    feature_set_hash: str
    label: dict


def embed_spec(onnx_bytes: bytes, features: FeatureSet, label: dict) -> bytes:
    """Return ``onnx_bytes`` with the feature set, its hash and ``label`` added to the metadata
    (the exporter's own entries are kept) and the graph named ``GRAPH_NAME``."""
    proto = onnx.ModelProto.FromString(onnx_bytes)
    spec = {"name": features.name, "features": [f.canonical() for f in features.features]}
    entries = {
        FEATURE_SET: json.dumps(spec, sort_keys=True),
        FEATURE_SET_HASH: features.hash(),
        LABEL: json.dumps(label, sort_keys=True),
    }
    kept = {p.key: p.value for p in proto.metadata_props if p.key not in entries}
    onnx.helper.set_model_props(proto, {**kept, **entries})
    proto.graph.name = GRAPH_NAME
    return proto.SerializeToString()


def read_spec(onnx_bytes: bytes) -> ModelSpec:
    """Read the entries ``embed_spec`` wrote; raise ValueError for a file without them."""
    props = {p.key: p.value for p in onnx.ModelProto.FromString(onnx_bytes).metadata_props}
    missing = [key for key in (FEATURE_SET, FEATURE_SET_HASH, LABEL) if key not in props]
    if missing:
        raise ValueError(f"the ONNX model has no {', '.join(missing)} metadata: train it with mode=train")
    return ModelSpec(json.loads(props[FEATURE_SET]), props[FEATURE_SET_HASH], json.loads(props[LABEL]))


def model_features(onnx_bytes: bytes) -> FeatureSet:
    """Return the feature set a model was trained on, checked against the hash recorded with it."""
    spec = read_spec(onnx_bytes)
    features = FeatureSet.from_config(spec.feature_set)
    if features.hash() != spec.feature_set_hash:
        raise ValueError(
            f"the model's feature set {features.name!r} hashes to {features.hash()} today, but the model was "
            f"trained when it hashed to {spec.feature_set_hash} (an indicator changed): retrain the model"
        )
    return features
