"""The state of one import: ONNX values are constants (arrays) or activations (an npxai value
name, a zero example of its shape and, where the exporter moved or merged the batch axis, its
:class:`~npxai.onnx.layout.Layout`), and the npxai nodes made so far."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import layers as L
from ..errors import LayerInputError, LoadError
from ..module import Module
from .layout import Layout
from .read import (
    BUDGET_PER_BYTE,
    EXAMPLE_BYTES,
    FLOATS,
    MIN_BUDGET,
    OPSET_MAX,
    OPSET_MIN,
    array,
    ordered,
)


class Importer:
    """One import: ONNX values are constants (arrays) or activations (an npxai value name and a
    zero example of its shape; where the ONNX value does not have the batch alone on axis 0,
    its :class:`~npxai.onnx.layout.Layout` in :attr:`layouts`).

    Where the file's batch is not fixed, the example's batch is 1 and every constant computed
    from a ``Shape`` also has its *shadow* (:attr:`shadows`): its value for a batch of 2, so that
    a ``Reshape`` knows which axis of its target follows the batch."""

    def __init__(self, model: Any, folder: Path | None, where: str, size: int, max_bytes: int | None,
                 input_shape: tuple[int, ...] | None):  # fmt: skip
        self.where = where
        graph = model.graph
        self._check_opsets(model)
        budget = [BUDGET_PER_BYTE * size + MIN_BUDGET if max_bytes is None else max_bytes]
        self.constants: dict[str, np.ndarray] = {}
        for tensor in graph.initializer:
            self.constants[tensor.name] = array(tensor, folder, where, budget)
        if len(graph.sparse_initializer):
            raise LoadError(f"{where}: sparse initializers are not read")
        self.budget, self.folder = budget, folder
        data_inputs = [i for i in graph.input if i.name not in self.constants]
        if len(data_inputs) != 1:
            raise LoadError(
                f"{where}: npxai imports graphs with one data input; this one has "
                f"{[i.name for i in data_inputs]}"
            )
        if not graph.output:
            raise LoadError(f"{where}: the graph has no output")
        self.input_name = data_inputs[0].name
        example = self._example(data_inputs[0], input_shape)
        first = data_inputs[0].type.tensor_type.shape.dim[:1]
        #: whether the file leaves the batch free (the example's batch is then 1, with shadows)
        self.dynamic_batch = not (first and first[0].HasField("dim_value") and first[0].dim_value)
        #: a batch of 1 fixed by the file: it floats (:mod:`npxai.onnx.layout`)
        self.free_batch = not self.dynamic_batch and example.shape[0] == 1
        self.activations: dict[str, tuple[str, np.ndarray]] = {self.input_name: ("input", example)}
        #: each npxai value's example (the latest, after a bias is folded into its layer)
        self.examples: dict[str, np.ndarray] = {"input": example}
        self.nodes: dict[str, tuple[Module, list[str]]] = {}
        self.graph_constants: dict[str, np.ndarray] = {}
        #: the ONNX activations whose layout is not the npxai value's own (absent: the same)
        self.layouts: dict[str, Layout] = {}
        #: constants computed from a Shape: their values for a batch of 2 (dynamic batch only)
        self.shadows: dict[str, np.ndarray] = {}
        self.consumers: dict[str, list] = {}
        order = ordered(list(graph.node), set(self.constants) | {self.input_name}, where)
        for node in order:
            for value in node.input:
                self.consumers.setdefault(value, []).append(node)
        self.order = order
        self.output_names = [o.name for o in graph.output]
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

    def _check_opsets(self, model: Any) -> None:
        functions = {(f.domain, f.name) for f in model.functions}
        for node in model.graph.node:
            if (node.domain, node.op_type) in functions:
                raise LoadError(
                    f"{self.where}: node {node.name!r} calls the ONNX function "
                    f"{node.domain}.{node.op_type}; functions are not imported (export with them "
                    "inlined)"
                )
            if node.domain not in ("", "ai.onnx"):
                raise LoadError(
                    f"{self.where}: node {node.name!r} ({node.op_type}) is in the custom domain "
                    f"{node.domain!r}; npxai imports only the default ONNX domain"
                )
        versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
        if not versions or not OPSET_MIN <= versions[0] <= OPSET_MAX:
            raise LoadError(
                f"{self.where}: opset {versions[0] if versions else None} of the default domain; "
                f"npxai reads opsets {OPSET_MIN} to {OPSET_MAX}"
            )

    def _example(self, value: Any, input_shape: tuple[int, ...] | None) -> np.ndarray:
        tensor = value.type.tensor_type
        if tensor.elem_type not in (1, 11):
            raise LoadError(
                f"{self.where}: input {value.name!r} has element type {tensor.elem_type}; npxai "
                "explains float32 (1) and float64 (11) inputs"
            )
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if input_shape is not None:
            shape = tuple(int(n) for n in input_shape)
            if len(shape) != len(dims) - 1 or any(
                d is not None and d != n for d, n in zip(dims[1:], shape, strict=False)
            ):
                raise ValueError(
                    f"input_shape={tuple(input_shape)} does not fit the input {value.name!r} of "
                    f"dims {dims} (the per-sample shape: all but the batch axis)"
                )
        elif not dims or any(d is None or d <= 0 for d in dims[1:]):
            raise LoadError(
                f"{self.where}: input {value.name!r} has dims {dims}; pass "
                "input_shape=(C, H, W) for the dims that are not fixed (all but the batch axis)"
            )
        else:
            shape = tuple(dims[1:])
        dtype = np.dtype(FLOATS[tensor.elem_type])
        if math.prod(shape) * dtype.itemsize > EXAMPLE_BYTES:
            raise LoadError(
                f"{self.where}: input {value.name!r} of per-sample shape {shape} needs more "
                f"than {EXAMPLE_BYTES} bytes; pass a smaller input_shape="
            )
        batch = dims[0] if dims and dims[0] else 1  # a fixed batch: the reshapes' targets hold it
        return np.zeros((batch, *shape), dtype)

    # --- values -----------------------------------------------------------------------------
    def is_constant(self, value: str) -> bool:
        return value in self.constants

    def constant(self, node: Any, index: int, default: Any = None) -> Any:
        if index >= len(node.input) or not node.input[index]:
            return default
        value = node.input[index]
        if value not in self.constants:
            self.fail(node, f"its input {index} ({value!r}) must be a constant")
        return self.constants[value]

    def activation(self, node: Any, index: int) -> tuple[str, np.ndarray]:
        """Input ``index`` as an npxai value with the batch alone on axis 0 (``Permute`` and
        ``Reshape`` nodes added where the exporter moved it there), and its example."""
        value = node.input[index]
        if value not in self.activations:
            self.fail(node, f"its input {index} ({value!r}) must not be a constant")
        return self.batch_first(node, value)

    def view(self, node: Any, index: int) -> tuple[str, np.ndarray, Layout]:
        """Input ``index`` as it is held: the npxai value, its example and the ONNX value's
        layout in it."""
        value = node.input[index]
        if value not in self.activations:
            self.fail(node, f"its input {index} ({value!r}) must not be a constant")
        name, x = self.activations[value]
        return name, x, self.layout(value)

    def layout(self, value: str) -> Layout:
        return self.layouts.get(value) or Layout.identity(self.activations[value][1].ndim)

    def shape(self, value: str, batch: int | None = None) -> tuple[int, ...]:
        """The ONNX activation's shape (for a batch of ``batch``)."""
        return self.layout(value).shape(self.activations[value][1].shape, batch)

    def canonical(self, node: Any, value: str) -> tuple[str, np.ndarray, Layout]:
        """The ONNX activation ``value`` held with each of its axes one axis of the npxai value
        but for the batch's (:meth:`Layout.canonical`): ``Permute`` and ``Reshape`` nodes added
        where needed, named after ``node``, and the value held so from then on."""
        name, x = self.activations[value]
        layout = self.layout(value)
        perm, shape, result = layout.canonical(x.shape)
        base = scope_name(node.name) or node.output[0]
        if perm != tuple(range(x.ndim)):
            name = self.add(node, L.Permute(perm), [name], f"{base}.permute", value)
        if shape != self.activations[value][1].shape:
            name = self.add(node, L.Reshape(shape[1:]), [name], f"{base}.reshape", value)
        self.set_layout(value, result)
        return (*self.activations[value], result)

    def batch_first(
        self, node: Any, value: str, reader: str | None = None
    ) -> tuple[str, np.ndarray]:
        """The ONNX activation ``value`` with the batch alone on axis 0 (the npxai value's own
        layout), made so where it is not; else a ``LoadError`` naming the node that moved or
        merged the batch and the reader (``node``, or ``reader``) that needs it there."""
        layout = self.layout(value)
        if layout.is_identity:
            return self.activations[value]
        if not layout.batch_first(self.activations[value][1].shape):
            reader = reader or f"node {node.name!r} ({node.op_type})"
            needs = f"{reader} needs the batch alone on axis 0 of {value!r}"
            if layout.mixed:
                raise LoadError(f"{layout.mixed}; {needs}")
            batch = layout.batch_axis()
            where = ("a batch of 1 fixed by the file, and axis 0 is not of size 1" if batch is None
                     else f"the batch on axis {batch}")  # fmt: skip
            raise LoadError(f"{self.where}: {needs}, of shape {self.shape(value)}: {where}")
        name, x, _ = self.canonical(node, value)
        return name, x

    def set_layout(self, value: str, layout: Layout) -> None:
        """Hold the ONNX activation ``value`` with ``layout`` in its npxai value."""
        if layout.is_identity:
            self.layouts.pop(value, None)
        else:
            self.layouts[value] = layout

    def per_sample(self, node: Any, constant: np.ndarray, value: str) -> np.ndarray:
        """``constant``, which ``node`` broadcasts against the activation ``value``, as an array
        that broadcasts against ``value``'s npxai value: its axes those of the npxai value where
        the layout is not the identity, the batch's axis 1 (a constant repeated along a fixed
        batch is taken once)."""
        x = self.activations[value][1]
        layout, shape = self.layout(value), self.shape(value)
        c = np.asarray(constant)
        if c.ndim > len(shape):
            if any(n != 1 for n in c.shape[: c.ndim - len(shape)]):
                self.fail(node, f"the constant of shape {c.shape} has more axes than the "
                                f"activation {shape}")  # fmt: skip
            c = c.reshape(c.shape[c.ndim - len(shape) :])
        if layout.is_identity:
            if c.ndim == len(shape) and c.shape[0] != 1:
                c = self._once_per_batch(node, c, 0)
            return c
        c = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
        order = layout.order if 0 in layout.order else (0, *layout.order)
        pieces: list[int] = [] if 0 in layout.order else [1]
        for members, n, size in zip(layout.members(), c.shape, shape, strict=True):
            if n == 1:
                pieces.extend([1] * len(members))
            elif n == size:
                pieces.extend(x.shape[a] for a in members)
            elif size == 1 and len(members) == 1 and members[0] != 0:
                pieces.append(n)
            else:
                self.fail(node, f"the constant of shape {constant.shape} does not broadcast "
                                f"against the activation {shape}")  # fmt: skip
        c = self._once_per_batch(node, c.reshape(pieces), order.index(0))
        return c.transpose(np.argsort(order))

    def _once_per_batch(self, node: Any, c: np.ndarray, axis: int) -> np.ndarray:
        if c.shape[axis] == 1:
            return c
        first = np.take(c, [0], axis=axis)
        if not np.array_equal(np.broadcast_to(first, c.shape), c):
            self.fail(node, f"the constant of shape {c.shape} differs along the batch axis")
        return first

    def fail(self, node: Any, message: str) -> None:
        raise LoadError(f"{self.where}: node {node.name!r} ({node.op_type}): {message}")

    def add(self, node: Any, module: Module, inputs: list[str], hint: str | None = None,
            output: str | None = None, layout: Layout | None = None) -> str:  # fmt: skip
        """Add ``module`` as an npxai node reading the npxai values ``inputs``; run it on their
        examples; the ONNX value ``output`` (default: the node's first) becomes its output, held
        with ``layout`` (default: the identity)."""
        name = self._name(hint or self.weight_hint(node) or scope_name(node.name) or node.output[0])
        examples = [self.graph_constants.get(value, self.examples.get(value)) for value in inputs]
        x = tuple(examples) if len(examples) > 1 else examples[0]
        try:
            module.check_input(x)
            y = module.forward(x, "numpy")
        except (LayerInputError, ValueError) as error:
            self.fail(node, f"{module!r} cannot take inputs of shapes "
                            f"{[e.shape for e in examples]}: {error}")  # fmt: skip
        self.nodes[name] = (module, inputs)
        self.activations[output or node.output[0]] = (name, y)
        self.set_layout(output or node.output[0], layout or Layout.identity(y.ndim))
        self.examples[name] = y
        return name

    def _name(self, hint: str) -> str:
        name, n = hint, 2
        taken = set(self.nodes) | set(self.graph_constants) | {"input"}
        while name in taken:
            name, n = f"{hint}_{n}", n + 1
        return name

    def graph_constant(self, value: str, array: np.ndarray) -> str:
        name = value if value not in self.nodes and value != "input" else self._name(value)
        if name in self.graph_constants and not np.array_equal(self.graph_constants[name], array):
            name = self._name(value)
        self.graph_constants[name] = array
        return name

    def alias(self, node: Any, index: int = 0) -> None:
        """The node's output is its input ``index``, as it is held."""
        name, x, layout = self.view(node, index)
        self.activations[node.output[0]] = (name, x)
        self.set_layout(node.output[0], layout)

    def weight_hint(self, node: Any, index: int = 1) -> str | None:
        """The node's name from its weight's initializer (``layer1.0.conv1.weight`` names the
        node ``layer1.0.conv1``, so that torch's state-dict keys hold) when no other node reads it."""
        value = node.input[index] if index < len(node.input) else ""
        if (
            value.endswith(".weight")
            and len(self.consumers.get(value, [])) == 1
            and (value in self.constants)
        ):
            return value[: -len(".weight")]
        return None


def scope_name(name: str) -> str:
    """torch's TorchScript exporter names nodes by module scope, ``/layer1/layer1.0/conv1/Conv``:
    that is ``layer1.0.conv1`` (the last part is the op; ``/features/features.1/conv/conv.0/Conv``
    is ``features.1.conv.0``)."""
    parts = name.split("/")
    if len(parts) < 3 or parts[0]:
        return name
    segments: list[str] = []  # a part that extends the last one replaces it: conv, conv.0
    for part in parts[1:-1]:
        if segments and part.startswith(segments[-1] + "."):
            segments[-1] = part
        else:
            segments.append(part)
    return ".".join(segments) or name


def ancestors(nodes: dict, name: str) -> set[str]:
    seen, stack = set(), [name]
    while stack:
        for value in nodes.get(stack.pop(), (None, []))[1]:
            if value not in seen:
                seen.add(value)
                stack.append(value)
    return seen
