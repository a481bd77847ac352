"""``npxai.from_onnx``: an ONNX model as an :class:`npxai.Graph` with the file's weights.

The file is parsed with the ``onnx`` package (protobuf; the ``onnx`` extra) and nothing of it is
run: every initializer's size is checked against its dims before an array is made, external
data is read only from the model's own folder, and the graph is walked once in topological
order. Nodes whose inputs are all constants (shape arithmetic, ``Constant``) are folded with
NumPy; every other node becomes an npxai layer (:data:`OPS`), run once on a zero example of the
input's shape (batch 1, or the file's fixed batch; the numpy backend) so that the shapes of
every value are known.

No layer may mix samples. The input's axis 0 is the batch, and npxai's layers take it on axis 0;
an exporter may move it or merge it with another axis between layers that keep the samples
apart (torch's attention: ``(N, S, E) -> (S, N, E)``, the heads ``(N * H, S, d)``, the tokens
``(S * N, E)``). The importer follows it (:mod:`npxai.onnx.layout`): a ``Transpose`` or
``Reshape`` that moves or merges it changes how the ONNX value lies in its npxai value, and
``Permute`` and ``Reshape`` nodes are added where a layer needs an axis of its own; where the
file leaves the batch free, the shapes computed from ``Shape`` are also computed for a batch of 2
to tell which axis of a target holds it; where the file fixes it at 1, it floats. A node that
would need the batch elsewhere (a softmax over it, a ``Reshape`` that splits it, an output
without it on axis 0) is a ``LoadError`` naming the node and the one that moved it.

So transformers exported from torch import as layers (TorchScript's exporter at opsets 14 and
up, and the dynamo one, with a free or a fixed batch): torchvision's ``VisionTransformer``,
``nn.MultiheadAttention`` (either ``need_weights``, with a fixed ``attn_mask``) and
``nn.TransformerEncoderLayer``: the projections ``Linear``, the head split ``Reshape``/``Select``,
``q k^T`` and ``A v`` ``MatMul`` of two activations, the scale a ``Mul`` by a constant (q and k by
its square root each, from TorchScript's exporter), the mask an ``Add`` of a constant,
``Softmax``; a class token (``Expand`` of a constant by the batch) is the constant, which
:class:`~npxai.layers.Concat` repeats along the batch; a positional embedding (an ``Add`` of a
constant that is no bias) a graph constant read by :class:`~npxai.layers.Add`. Export with
autograd on: under ``torch.no_grad()`` torch takes its fused fast path
(``aten::_native_multi_head_attention``), which TorchScript's exporter refuses.

Patterns of older exporters are recognised: ``x * sigmoid(x)`` is ``SiLU``; torch's erf form of
GELU (``Div(x, sqrt 2) -> Erf -> Add 1``, then ``Mul`` by ``x`` and by ``0.5`` in either order)
is ``GELU``; LayerNorm's pattern before opset 17 is ``LayerNorm``; ``MatMul`` by a constant and
a following ``Add`` of a constant vector is ``Linear``; a constant added to a ``Conv``'s or
``Linear``'s output along its channels is their bias.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..containers import Graph
from ..errors import LoadError
from .fold import FOLDS
from .importer import Importer, ancestors
from .ops import OPS
from .read import parse

__all__ = ["FOLDS", "OPS", "from_onnx"]


def walk(im: Importer) -> Graph:
    """Every node in order: folded, or made a layer; the graph of the nodes the output needs."""
    skip: set[int] = set()
    for node in im.order:
        if id(node) in skip:
            continue
        outputs = [v for v in node.output if v]
        if all(not v or v in im.constants for v in node.input) and node.op_type in FOLDS:
            try:
                result = FOLDS[node.op_type](im, node)
            except LoadError:
                raise
            except Exception as error:
                im.fail(node, f"cannot fold its constant inputs ({error})")
            for value, array in zip(outputs, result, strict=False):
                im.constants[value] = array
            if any(v in im.shadows for v in node.input):
                _shadow(im, node, outputs, result)
            continue
        handler = OPS.get(node.op_type)
        if handler is None:
            im.fail(
                node,
                "this op is not supported; npxai imports "
                + ", ".join(sorted(set(OPS) | set(FOLDS))),
            )
        skip.update(handler(im, node) or ())
        for extra in outputs[1:]:
            if extra not in im.activations and im.consumers.get(extra):
                im.fail(node, f"its output {extra!r} is read, which npxai does not give")
    outputs = []
    for name in im.output_names:
        if name not in im.activations:
            raise LoadError(f"{im.where}: the output {name!r} is a constant")
        producer = next(n for n in im.order if name in n.output)
        outputs.append(im.batch_first(producer, name, f"the output {name!r}")[0])
    if len(set(outputs)) != len(outputs):
        raise LoadError(f"{im.where}: the outputs {im.output_names} are not distinct values")
    return _graph(im, outputs)


def _shadow(im: Importer, node: Any, outputs: list[str], result: list) -> None:
    """The folded node's outputs for a batch of 2 (its inputs' shadows for theirs), where they
    differ from those for the example's batch."""
    primary = {v: im.constants[v] for v in node.input if v in im.shadows}
    im.constants.update({v: im.shadows[v] for v in primary})
    try:
        shadows = FOLDS[node.op_type](im, node)
    except Exception:  # a value that only the example's batch gives (an exporter's check)
        shadows = []
    finally:
        im.constants.update(primary)
    for value, shadow, array in zip(outputs, shadows, result, strict=False):
        if np.shape(shadow) != np.shape(array) or not np.array_equal(shadow, array):
            im.shadows[value] = shadow


def _graph(im: Importer, outputs: list[str]) -> Graph:
    needed = set(outputs).union(*(ancestors(im.nodes, output) for output in outputs))
    nodes = {name: node for name, node in im.nodes.items() if name in needed}
    used = {v for _, inputs in nodes.values() for v in inputs}
    constants = {k: v for k, v in im.graph_constants.items() if k in used}
    output = outputs[0] if len(outputs) == 1 else outputs
    graph = Graph(nodes, output=output, input="input", constants=constants)
    object.__setattr__(graph, "input_shape", im.activations[im.input_name][1].shape[1:])
    return graph


def from_onnx(
    source: str | os.PathLike | bytes | Any,
    input_shape: tuple[int, ...] | None = None,
    max_bytes: int | None = None,
) -> Graph:
    """An ONNX model (a path, its bytes or an ``onnx.ModelProto``) as an :class:`npxai.Graph`
    with its weights, for the ops in :data:`OPS` (opsets 11 to 23 of the default domain).

    ``input_shape`` is the per-sample shape (all but the batch axis) where the file's is not
    fixed. ``max_bytes`` bounds the initializers' bytes (by default twice the model's size plus
    64 MiB), each checked against its dims before it is read. Node names come from the weights'
    names where one node reads a weight (``layer1.0.conv1.weight`` names the node
    ``layer1.0.conv1``, so that the graph's state-dict keys are torch's), else from the ONNX
    node's name.

    The graph's ``input_shape`` is the per-sample input shape it was imported for. It runs at any
    batch, whatever batch the file fixes: each sample through the file's function of one.
    Transformers import written out as layers (see the module's docstring).

    Raises :class:`~npxai.errors.LoadError` naming the file and the node (its name and op type)
    for anything it cannot import: an op it does not know (the message lists those it does), a
    custom domain or an ONNX function, a cycle, a dangling input or missing initializer, an
    initializer whose data does not match its dims, external data outside the model's folder,
    a truncated or corrupt file.
    """
    model, folder, where, size = parse(source)
    return walk(Importer(model, folder, where, size, max_bytes, input_shape))
