"""Tree ensembles (ai.onnx.ml TreeEnsembleClassifier and TreeEnsembleRegressor) as flat arrays and one kernel.

``tree_ensemble_arrays`` turns the ONNX node's attributes into records
(``models.enums``); ``predict_tree_ensemble`` evaluates one row with onnxruntime's
semantics:

* the feature is rounded to float32 before it is compared with the float32
  threshold, as onnxruntime does with the float32 input tensor, so a row exactly at a
  threshold takes the same branch;
* a NaN feature goes to the true child where ``nodes_missing_value_tracks_true`` is
  set, and otherwise wherever its comparison sends it (false for every mode but NEQ);
* the leaf weights of every tree are summed per class or target (divided by the
  number of trees for ``aggregate_function=AVERAGE``), base values are added, and
  ``post_transform`` is applied; a two-class classifier whose trees carry a single
  score fills both columns from it as onnxruntime does (``Transform``).

Sums are float64 where onnxruntime's are float32, so outputs agree to float32 rounding
of the sum (some 1e-7 relative per tree); the leaves reached are the same. The arrays
are not a copy of the ONNX attributes: each tree is laid out breadth first with a
branch's two children side by side (``TREE_NODE_DTYPE``), which makes the walk cheap.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit

from framework.events import records
from framework.jit import HOT, KERNEL
from models.enums import (
    NODE_MODES,
    TREE_DTYPE,
    TREE_NODE_DTYPE,
    TREE_PARAMS_DTYPE,
    TREE_WEIGHT_DTYPE,
    Aggregate,
    NodeMode,
    Transform,
)
from models.onnx_graph import ModelGraph, check_attributes, text, unsupported
from models.scores import apply_transform

_NODE_ATTRIBUTES = (
    "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values", "nodes_truenodeids",
    "nodes_falsenodeids", "nodes_missing_value_tracks_true", "nodes_hitrates", "base_values", "post_transform",
)
_CLASSIFIER_ATTRIBUTES = _NODE_ATTRIBUTES + (
    "class_treeids", "class_nodeids", "class_ids", "class_weights", "classlabels_int64s", "classlabels_strings",
)
_REGRESSOR_ATTRIBUTES = _NODE_ATTRIBUTES + (
    "target_treeids", "target_nodeids", "target_ids", "target_weights", "n_targets", "aggregate_function",
)
_TRANSFORMS = {"NONE": Transform.IDENTITY, "LOGISTIC": Transform.LOGISTIC, "SOFTMAX": Transform.SOFTMAX}
_AGGREGATES = {"SUM": Aggregate.SUM, "AVERAGE": Aggregate.AVERAGE}


class TreeEnsembleArrays(NamedTuple):
    """Everything ``predict_tree_ensemble`` reads; build once, keep for the model's life.

    ``params`` is one ``TREE_PARAMS_DTYPE`` record, ``trees`` a ``TREE_DTYPE`` record
    per tree, ``nodes`` the ``TREE_NODE_DTYPE`` records of all trees, and the weights
    of leaf ``i`` are ``weights[weight_offsets[i]:weight_offsets[i + 1]]``
    (``TREE_WEIGHT_DTYPE``). ``base`` is the value added to each output.
    """

    params: np.ndarray
    trees: np.ndarray
    nodes: np.ndarray
    weight_offsets: np.ndarray
    weights: np.ndarray
    base: np.ndarray


def tree_ensemble_arrays(graph: ModelGraph) -> tuple[TreeEnsembleArrays, tuple[Any, ...] | None]:
    """Build the kernel's arrays from a tree-ensemble node; also return the class labels (None for a regressor)."""
    node, a = graph.node, graph.attributes
    classifier = node.op_type == "TreeEnsembleClassifier"
    check_attributes(node, a, _CLASSIFIER_ATTRIBUTES if classifier else _REGRESSOR_ATTRIBUTES)
    labels = _labels(node, a) if classifier else None
    n_outputs = len(labels) if labels is not None else int(a.get("n_targets", 1))
    trees, nodes, position = _layout(node, a, graph.n_features)
    offsets, weights = _weights(node, a, "class" if classifier else "target", nodes, position, n_outputs)
    if classifier:
        transform, base = _classifier_output(node, a, n_outputs)
        aggregate = Aggregate.SUM
    else:
        transform, base, aggregate = _regressor_output(node, a, n_outputs)
    params = records(1, TREE_PARAMS_DTYPE)
    params["n_features"] = graph.n_features
    params["n_outputs"] = n_outputs
    params["n_trees"] = len(trees)
    params["aggregate"] = aggregate
    params["transform"] = transform
    return TreeEnsembleArrays(params, trees, nodes, offsets, weights, base), labels


@njit(**HOT)
def _step(nodes, x, i: int) -> int:
    """Move one level down from node ``i`` (a leaf stays where it is)."""
    node = nodes[i]
    mode = node.mode
    v = np.float32(x[node.feature])
    t = node.threshold
    if mode == NodeMode.BRANCH_LEQ:
        go_true = v <= t
    elif mode == NodeMode.BRANCH_LT:
        go_true = v < t
    elif mode == NodeMode.BRANCH_GTE:
        go_true = v >= t
    elif mode == NodeMode.BRANCH_GT:
        go_true = v > t
    elif mode == NodeMode.BRANCH_EQ:
        go_true = v == t
    elif mode == NodeMode.BRANCH_NEQ:
        go_true = v != t
    else:
        go_true = True
    go_true = go_true | ((node.missing_true != 0) & np.isnan(v))
    return node.child + 1 - np.int64(go_true)


@njit(**HOT)
def _add_leaf(model, leaf: int, out) -> None:
    weights = model.weights
    for w in range(model.weight_offsets[leaf], model.weight_offsets[leaf + 1]):
        out[weights[w].output] += weights[w].value


@njit(**KERNEL)
def predict_tree_ensemble(model, x, out) -> None:
    """Evaluate one row ``x`` (float64, ``n_features`` long) into ``out[:n_outputs]``, allocating nothing.

    ``out`` receives the class probabilities in label order for a classifier (whatever
    the ONNX model's ``probabilities`` output holds), the targets for a regressor.
    Trees are walked four at a time: each walk is a chain of dependent loads, and four
    independent chains keep the CPU busy while each waits (twice as fast as one by one
    for a hundred trees of depth six).
    """
    prm = model.params[0]
    n = prm.n_outputs
    for k in range(n):
        out[k] = 0.0
    nodes = model.nodes
    trees = model.trees
    t = 0
    while t + 4 <= prm.n_trees:
        a, b, c, d = trees[t].root, trees[t + 1].root, trees[t + 2].root, trees[t + 3].root
        depth = max(max(trees[t].depth, trees[t + 1].depth), max(trees[t + 2].depth, trees[t + 3].depth))
        for _ in range(depth):
            a = _step(nodes, x, a)
            b = _step(nodes, x, b)
            c = _step(nodes, x, c)
            d = _step(nodes, x, d)
        _add_leaf(model, a, out)
        _add_leaf(model, b, out)
        _add_leaf(model, c, out)
        _add_leaf(model, d, out)
        t += 4
    while t < prm.n_trees:
        a = trees[t].root
        for _ in range(trees[t].depth):
            a = _step(nodes, x, a)
        _add_leaf(model, a, out)
        t += 1
    if prm.aggregate == Aggregate.AVERAGE:
        for k in range(n):
            out[k] /= prm.n_trees
    for k in range(n):
        out[k] += model.base[k]
    apply_transform(out, n, prm.transform)


@njit(**KERNEL)
def predict_tree_ensemble_rows(model, X, out) -> None:
    """Evaluate every row of ``X`` into the same row of ``out`` (research and batch use)."""
    for r in range(X.shape[0]):
        predict_tree_ensemble(model, X[r], out[r])


def _labels(node, a: dict[str, Any]) -> tuple[Any, ...]:
    if a.get("classlabels_strings"):
        return tuple(text(label) for label in a["classlabels_strings"])
    labels = tuple(int(label) for label in a.get("classlabels_int64s", ()))
    if not labels:
        raise unsupported(node, "has no class labels")
    return labels


def _layout(node, a: dict[str, Any], n_features: int) -> tuple[np.ndarray, np.ndarray, dict[tuple[int, int], int]]:
    """Lay the trees out breadth first, each branch's two children side by side.

    Return the tree records, the node records and the position of every reachable
    ONNX node (tree id, node id). As in onnxruntime, a tree starts at its first listed
    node; nodes no walk can reach are left out.
    """
    tree_ids = list(a.get("nodes_treeids", ()))
    n = len(tree_ids)
    columns = ("nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values", "nodes_truenodeids",
               "nodes_falsenodeids")
    for name in columns:
        if len(a.get(name, ())) != n:
            raise unsupported(node, f"{name} has {len(a.get(name, ()))} entries for {n} nodes")
    if n == 0:
        raise unsupported(node, "has no tree nodes")
    node_ids = a["nodes_nodeids"]
    listed: dict[tuple[int, int], int] = {}
    roots: list[int] = []
    for i, key in enumerate(zip(tree_ids, node_ids)):
        if key in listed:
            raise unsupported(node, f"node {key[1]} of tree {key[0]} is listed twice")
        listed[key] = i
        if i == 0 or tree_ids[i] != tree_ids[i - 1]:
            roots.append(i)
    if len({tree_ids[root] for root in roots}) != len(roots):
        raise unsupported(node, "the nodes of each tree must be listed together")
    modes = []
    for mode in a["nodes_modes"]:
        if mode not in NODE_MODES:
            raise unsupported(node, f"node mode {text(mode)!r} is not supported")
        modes.append(NODE_MODES[mode])
    order: list[int] = []  # ONNX node positions, in layout order
    depth: list[int] = []
    seen: set[int] = set()
    tree_roots, tree_depths = [], []
    for root in roots:
        k = len(order)
        tree_roots.append(k)
        order.append(root)
        depth.append(0)
        while k < len(order):  # breadth first: the queue is the layout
            i = order[k]
            if modes[i] != NodeMode.LEAF:
                for column in ("nodes_truenodeids", "nodes_falsenodeids"):
                    child = listed.get((tree_ids[i], a[column][i]))
                    if child is None or child == root or child in seen:
                        raise unsupported(node, f"node {node_ids[i]} of tree {tree_ids[i]}: child {a[column][i]} "
                                                "is missing or reached twice")
                    seen.add(child)
                    order.append(child)
                    depth.append(depth[k] + 1)
            k += 1
        tree_depths.append(max(depth[tree_roots[-1]:]))
    trees = records(len(roots), TREE_DTYPE)
    trees["root"] = tree_roots
    trees["depth"] = tree_depths
    position = {(tree_ids[i], node_ids[i]): j for j, i in enumerate(order)}
    raw = np.asarray(order, np.int64)
    mode = np.asarray(modes, np.int8)[raw]
    branch = mode != NodeMode.LEAF
    features = np.asarray(a["nodes_featureids"], np.int64)[raw]
    features[~branch] = 0  # a leaf's step reads a feature and ignores it
    if not ((0 <= features) & (features < n_features)).all():
        raise unsupported(node, f"a feature id is outside the input's {n_features} columns")
    tracks = np.asarray(a.get("nodes_missing_value_tracks_true", ()), np.int64)[:n] == 1
    missing = np.zeros(n, np.int8)
    missing[: len(tracks)] = tracks
    child = np.arange(len(order), dtype=np.int64)  # a leaf is its own child
    child[branch] = [position[(tree_ids[i], a["nodes_truenodeids"][i])] for i in raw[branch]]
    nodes = records(len(order), TREE_NODE_DTYPE)
    nodes["mode"] = mode
    nodes["feature"] = features
    nodes["threshold"] = np.asarray(a["nodes_values"], np.float32)[raw]
    nodes["missing_true"] = missing[raw]
    nodes["child"] = child
    return trees, nodes, position


def _weights(node, a: dict[str, Any], prefix: str, nodes: np.ndarray, position: dict[tuple[int, int], int],
             n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    trees, node_ids = a.get(f"{prefix}_treeids", ()), a.get(f"{prefix}_nodeids", ())
    outputs, values = a.get(f"{prefix}_ids", ()), a.get(f"{prefix}_weights", ())
    if not len(trees) == len(node_ids) == len(outputs) == len(values):
        raise unsupported(node, f"the {prefix}_* attributes have different lengths")
    leaves, kept = [], []
    for k, (tree, node_id, output) in enumerate(zip(trees, node_ids, outputs)):
        if not 0 <= output < n_outputs:
            raise unsupported(node, f"a weight is for output {output}, outside 0..{n_outputs - 1}")
        leaf = position.get((tree, node_id))
        if leaf is None:
            continue  # a node no walk reaches
        if nodes["mode"][leaf] != NodeMode.LEAF:
            raise unsupported(node, f"a weight is attached to node {node_id} of tree {tree}, which is not a leaf")
        leaves.append(leaf)
        kept.append(k)
    by_leaf = np.asarray(kept, np.int64)[np.argsort(np.asarray(leaves, np.int64), kind="stable")]
    weights = records(len(by_leaf), TREE_WEIGHT_DTYPE)
    weights["output"] = np.asarray(outputs, np.int64)[by_leaf]
    weights["value"] = np.asarray(values, np.float32)[by_leaf]
    offsets = np.zeros(len(nodes) + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(np.asarray(leaves, np.int64), minlength=len(nodes)))
    return offsets, weights


def _classifier_output(node, a: dict[str, Any], n_classes: int) -> tuple[int, np.ndarray]:
    post = text(a.get("post_transform", b"NONE"))
    base_values = list(a.get("base_values", ()))
    class_ids = set(a.get("class_ids", ()))
    base = np.zeros(n_classes, np.float64)
    if n_classes == 2 and len(class_ids) == 1:
        # onnxruntime's binary case: the trees score one class, both columns come from that score
        if class_ids != {0}:
            raise unsupported(node, "a two-class ensemble scoring only class 1 is not implemented")
        if len(base_values) > 1:
            raise unsupported(node, "a two-class ensemble scoring one class takes at most one base value")
        base[0] = np.float32(base_values[0]) if base_values else 0.0
        if post == "LOGISTIC":
            return Transform.BINARY_LOGISTIC, base
        if post == "NONE":
            signed = any(w < 0 for w in a.get("class_weights", ()))
            return (Transform.BINARY_NEGATE if signed else Transform.BINARY_COMPLEMENT), base
        raise unsupported(node, f"post_transform {post} is not implemented for a two-class ensemble scoring one class")
    if post not in _TRANSFORMS:
        raise unsupported(node, f"post_transform {post} is not implemented")
    if base_values:
        if n_classes == 2 or len(base_values) != n_classes:
            raise unsupported(node, f"{len(base_values)} base values for {n_classes} classes are not implemented")
        base[:] = np.asarray(base_values, np.float32)
    return _TRANSFORMS[post], base


def _regressor_output(node, a: dict[str, Any], n_targets: int) -> tuple[int, np.ndarray, int]:
    post = text(a.get("post_transform", b"NONE"))
    if post != "NONE":
        # onnxruntime ignores LOGISTIC and SOFTMAX on a single target: refuse rather than pick a side
        raise unsupported(node, f"post_transform {post} is not implemented for a regressor")
    aggregate = text(a.get("aggregate_function", b"SUM"))
    if aggregate not in _AGGREGATES:
        raise unsupported(node, f"aggregate_function {aggregate} is not implemented")
    base_values = list(a.get("base_values", ()))
    if base_values and len(base_values) != n_targets:
        raise unsupported(node, f"{len(base_values)} base values for {n_targets} targets are not implemented")
    base = np.zeros(n_targets, np.float64)
    if base_values:
        base[:] = np.asarray(base_values, np.float32)
    return Transform.IDENTITY, base, _AGGREGATES[aggregate]
