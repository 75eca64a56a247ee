"""Read an ONNX model into its one predictive node and what surrounds it.

The compiled kernels implement exactly the graphs our exporter (``models.onnx_export``)
produces with skl2onnx and onnxmltools from float32 input: one ``ai.onnx.ml``
predictive node (``TreeEnsembleClassifier``, ``TreeEnsembleRegressor``,
``LinearClassifier``, ``LinearRegressor``) fed by the graph's input, followed on the
score path by nodes that keep the values (``Identity``, ``Cast`` to float or double)
and at most one L1 ``Normalizer`` (multiclass logistic regression). Anything else
raises ``UnsupportedModelError`` naming the node, rather than being evaluated
approximately: a kernel that silently differs from onnxruntime is worse than none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import helper

from models.enums import Normalize

ML_DOMAIN = "ai.onnx.ml"
CLASSIFIERS = frozenset({"TreeEnsembleClassifier", "LinearClassifier"})
PREDICTORS = CLASSIFIERS | {"TreeEnsembleRegressor", "LinearRegressor"}
VALUE_PRESERVING_CASTS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE})

_HINTS = {
    "ZipMap": "export classifiers with zipmap disabled (models.onnx_export does), so probabilities are a tensor",
    "TreeEnsemble": "the ai.onnx.ml opset-5 TreeEnsemble operator is not produced by models.onnx_export; re-export",
}


class UnsupportedModelError(ValueError):
    """An ONNX model uses a node, attribute or layout the compiled kernels do not implement."""


def describe(node: onnx.NodeProto) -> str:
    """Name a node the way error messages do: its name and its operator."""
    domain = node.domain or "ai.onnx"
    return f"node {node.name!r} ({domain}.{node.op_type})"


def unsupported(node: onnx.NodeProto, why: str) -> UnsupportedModelError:
    """Build the error for ``node``: what it is and why it cannot be compiled."""
    return UnsupportedModelError(f"{describe(node)}: {why}")


@dataclass(frozen=True)
class ModelGraph:
    """The parts of an ONNX model the compiled kernels need.

    ``attributes`` are the predictive node's attributes, decoded (ints and floats as
    lists, strings as bytes). ``n_features`` is the fixed width of the float32 input.
    ``normalize`` is the ``Normalizer`` applied after the node, if any.
    """

    node: onnx.NodeProto
    attributes: dict[str, Any]
    n_features: int
    normalize: int


def read_graph(onnx_bytes: bytes) -> ModelGraph:
    """Parse ``onnx_bytes`` and check that the kernels can evaluate it exactly."""
    model = onnx.ModelProto.FromString(onnx_bytes)
    graph = model.graph
    input_name, n_features = _float_input(graph)
    for node in graph.node:
        _check_operator(node)
    nodes = list(graph.node)
    predictors = [i for i, node in enumerate(nodes) if node.op_type in PREDICTORS]
    if len(predictors) != 1:
        names = ", ".join(describe(nodes[i]) for i in predictors) or "none"
        raise UnsupportedModelError(f"the graph needs exactly one predictive node, found {names}")
    node = nodes[predictors[0]]
    if list(node.input) != [input_name]:
        raise unsupported(node, f"must read the graph input {input_name!r} directly, reads {list(node.input)}")
    consumers = _consumers(nodes)
    outputs = {value.name for value in graph.output}
    score = node.output[1] if node.op_type in CLASSIFIERS else node.output[0]
    visited, normalize = _follow_scores(score, nodes, consumers, outputs)
    for other in node.output:
        if other != score:
            visited |= _follow_labels(other, nodes, consumers)
    for i, other in enumerate(nodes):
        if i != predictors[0] and i not in visited:
            raise unsupported(other, "is not on the path from the predictive node to the graph outputs")
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return ModelGraph(node=node, attributes=attributes, n_features=n_features, normalize=normalize)


def check_attributes(node: onnx.NodeProto, attributes: dict[str, Any], known: Iterable[str]) -> None:
    """Refuse attributes the kernel would ignore (tensor-valued thresholds, for example)."""
    extra = sorted(set(attributes) - set(known))
    if extra:
        raise unsupported(node, f"attributes {extra} are not supported")


def text(value: Any) -> str:
    """Decode a string attribute (ONNX stores them as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _float_input(graph: onnx.GraphProto) -> tuple[str, int]:
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedModelError(f"the graph needs exactly one input, has {[v.name for v in inputs]}")
    value = inputs[0]
    tensor = value.type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        dtype = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise UnsupportedModelError(f"input {value.name!r} is {dtype}; the kernels implement float32 input only")
    dims = tensor.shape.dim
    if len(dims) != 2 or dims[1].dim_value <= 0:
        raise UnsupportedModelError(f"input {value.name!r} must have shape [N, n_features] with n_features fixed")
    return value.name, int(dims[1].dim_value)


def _check_operator(node: onnx.NodeProto) -> None:
    op = node.op_type
    if node.domain == ML_DOMAIN and (op in PREDICTORS or op == "Normalizer"):
        return
    if node.domain in ("", "ai.onnx") and op in ("Identity", "Cast"):
        return
    raise unsupported(node, _HINTS.get(op, "this operator is not implemented by the compiled kernels"))


def _attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _consumers(nodes: list[onnx.NodeProto]) -> dict[str, list[int]]:
    """Map each tensor name to the indices of the nodes that read it."""
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    return consumers


def _next_node(
    name: str, nodes: list[onnx.NodeProto], consumers: dict[str, list[int]], visited: set[int]
) -> int | None:
    readers = consumers.get(name, [])
    if readers and readers[0] in visited:
        raise unsupported(nodes[readers[0]], "is part of a cycle")
    if len(readers) > 1:
        raise unsupported(nodes[readers[1]], f"is a second reader of {name!r}; the kernels follow one path per output")
    return readers[0] if readers else None


def _follow_scores(
    name: str, nodes: list[onnx.NodeProto], consumers: dict[str, list[int]], outputs: set[str]
) -> tuple[set[int], int]:
    visited: set[int] = set()
    normalize = Normalize.NONE
    while (i := _next_node(name, nodes, consumers, visited)) is not None:
        node = nodes[i]
        if node.op_type == "Normalizer":
            norm = text(_attribute(node, "norm", b""))
            if norm != "L1" or normalize != Normalize.NONE:
                raise unsupported(node, f"only one L1 normalization is implemented, got norm={norm!r}")
            normalize = Normalize.L1
        elif node.op_type == "Cast":
            _check_cast(node)
        visited.add(i)
        name = node.output[0]
    if name not in outputs:
        raise UnsupportedModelError(f"the scores end in {name!r}, which is not a graph output")
    return visited, normalize


def _follow_labels(name: str, nodes: list[onnx.NodeProto], consumers: dict[str, list[int]]) -> set[int]:
    visited: set[int] = set()
    while (i := _next_node(name, nodes, consumers, visited)) is not None:
        if nodes[i].op_type not in ("Identity", "Cast"):
            raise unsupported(nodes[i], "only Identity and Cast may follow the predicted label")
        visited.add(i)
        name = nodes[i].output[0]
    return visited


def _check_cast(node: onnx.NodeProto) -> None:
    if _attribute(node, "to") not in VALUE_PRESERVING_CASTS:
        raise unsupported(node, "only casts of the scores to float or double are implemented")
