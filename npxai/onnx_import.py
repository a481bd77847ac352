"""``npxai.from_onnx``: an ONNX model as an :class:`npxai.Graph` with the file's weights.

The file is parsed with the ``onnx`` package (protobuf; the ``onnx`` extra) and nothing of it is
run: every initializer's size is checked against its dims before an array is made, external
data is read only from the model's own folder, and the graph is walked once in topological
order. Nodes whose inputs are all constants (shape arithmetic, ``Constant``) are folded with
NumPy; every other node becomes an npxai layer (:data:`OPS`), run once on a zero example of the
input's shape (batch 1, the numpy backend) so that the shapes of every value are known.

Axis 0 is the batch: a reshape keeps it (``Reshape``'s target is the per-sample shape), and no
layer may mix samples. Patterns of older exporters are recognised: ``x * sigmoid(x)`` is
``SiLU``, torch's erf form of GELU (``Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5``) is
``GELU``; ``MatMul`` by a constant and a following ``Add`` of a constant vector is ``Linear``; a
constant added to a ``Conv``'s or ``Linear``'s output along its channels is their bias.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import layers as L
from .containers import Graph
from .errors import LayerInputError, LoadError, MissingExtraError
from .io import check_file
from .module import Module

#: The opsets of the default domain that are read.
OPSET_MIN, OPSET_MAX = 11, 23
#: Bytes the example input of the shape walk may take (a larger input needs ``input_shape=``).
EXAMPLE_BYTES = 1 << 30
#: By default, the initializers may take this many times the model's size (file and external
#: data) plus 64 MiB.
BUDGET_PER_BYTE, MIN_BUDGET = 2, 64 << 20

_ONNX_FLOATS = {1: np.float32, 10: np.float16, 11: np.float64}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingExtraError(
            "from_onnx needs the onnx package: pip install 'npxai[onnx]'"
        ) from None
    return onnx


# --- reading the file, checking sizes before anything is made --------------------------------
def _parse(source: Any) -> tuple[Any, Path | None, str, int]:
    """``(ModelProto, its folder or None, a name for messages, its size in bytes)``."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source, None, "the ONNX model", source.ByteSize()
    if isinstance(source, bytes | bytearray | memoryview):
        data, where, folder = bytes(source), "the ONNX bytes", None
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        check_file(path, "ONNX")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise LoadError(f"{path}: cannot read this ONNX file ({error.strerror})") from None
        where, folder = str(path), path.resolve().parent
    else:
        raise TypeError(
            f"from_onnx expects a path, bytes or an onnx.ModelProto, got {type(source).__name__}"
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError and its kin
        raise LoadError(
            f"{where}: not a readable ONNX file (truncated or corrupt: {error})"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise LoadError(f"{where}: not an ONNX model (no graph with nodes; truncated or corrupt?)")
    return model, folder, where, len(data)


def _external(tensor: Any, folder: Path | None, where: str) -> tuple[Path, int, int | None]:
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    name = f"{where}: initializer {tensor.name!r}"
    if folder is None:
        raise LoadError(f"{name} keeps its data in an external file, which needs the model's path")
    if not location or Path(location).is_absolute() or ".." in Path(location).parts:
        raise LoadError(
            f"{name}: external data location {location!r} leaves the model's folder; only "
            "relative paths inside it are read"
        )
    path = (folder / location).resolve()
    if not path.is_relative_to(folder):
        raise LoadError(f"{name}: external data location {location!r} leads out of {folder}")
    check_file(path, "external data")
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError:
        raise LoadError(f"{name}: external data offset or length is not an integer") from None
    return path, offset, length


def _array(tensor: Any, folder: Path | None, where: str, budget: list[int]) -> np.ndarray:
    """An initializer (or ``Constant``'s value) as an array, its byte count checked against its
    dims (and the budget) before anything is allocated."""
    from onnx import numpy_helper

    name = f"{where}: initializer {tensor.name!r}"
    if tensor.data_type not in _DTYPES:
        raise LoadError(f"{name} has data type {tensor.data_type}, which npxai does not read")
    dtype = np.dtype(_DTYPES[tensor.data_type])
    if any(d < 0 for d in tensor.dims):
        raise LoadError(f"{name} has negative dims {list(tensor.dims)}")
    count = math.prod(tensor.dims)
    nbytes = count * dtype.itemsize
    if nbytes > budget[0]:
        raise LoadError(
            f"{name}: dims {list(tensor.dims)} need {nbytes} bytes, more than the {budget[0]} "
            "left for this model's initializers (pass a larger max_bytes= for a model that "
            "really holds that much)"
        )
    budget[0] -= nbytes
    if tensor.data_location == 1:  # EXTERNAL
        path, offset, length = _external(tensor, folder, where)
        size = path.stat().st_size
        if (length is not None and length != nbytes) or offset < 0 or offset + nbytes > size:
            raise LoadError(
                f"{name}: dims {list(tensor.dims)} need {nbytes} bytes at offset {offset} of "
                f"{path.name}, which holds {size} (length {length})"
            )
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(nbytes)
        return np.frombuffer(data, dtype.newbyteorder("<")).reshape(tuple(tensor.dims)).copy()
    if tensor.HasField("raw_data"):
        held = len(tensor.raw_data)
    else:
        held = len(getattr(tensor, _FIELDS[tensor.data_type])) * dtype.itemsize
    if held != nbytes:
        raise LoadError(
            f"{name}: dims {list(tensor.dims)} ({count} values of {dtype}) do not match the "
            f"{held // max(dtype.itemsize, 1)} values it holds"
        )
    return np.array(numpy_helper.to_array(tensor))


_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_,
           10: np.float16, 11: np.float64}  # fmt: skip
_FIELDS = {1: "float_data", 2: "int32_data", 3: "int32_data", 6: "int32_data", 7: "int64_data",
           9: "int32_data", 10: "int32_data", 11: "double_data"}  # fmt: skip


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


# --- the graph's order and its wiring --------------------------------------------------------
def _ordered(nodes: list, known: set[str], where: str) -> list:
    """The nodes in an order they can run in; a dangling input or a cycle is a named error."""
    producers: dict[str, Any] = {}
    for node in nodes:
        for value in node.output:
            if value and (value in producers or value in known):
                raise LoadError(f"{where}: value {value!r} is produced twice (node {node.name!r})")
            if value:
                producers[value] = node
    for node in nodes:
        for value in node.input:
            if value and value not in producers and value not in known:
                raise LoadError(
                    f"{where}: node {node.name!r} ({node.op_type}) reads {value!r}, which no "
                    "node, initializer or graph input gives (a dangling input or a missing "
                    "initializer)"
                )
    done, order, waiting = set(known), [], list(nodes)
    while waiting:
        ready = [n for n in waiting if all(not v or v in done for v in n.input)]
        if not ready:
            names = ", ".join(repr(n.name or n.op_type) for n in waiting[:5])
            raise LoadError(f"{where}: the graph has a cycle through the nodes {names}")
        for node in ready:
            order.append(node)
            done.update(v for v in node.output if v)
        ready_ids = {id(n) for n in ready}
        waiting = [n for n in waiting if id(n) not in ready_ids]
    return order


class _Importer:
    """One import: ONNX values are constants (arrays) or activations (an npxai value name and a
    zero example of its shape)."""

    def __init__(self, model: Any, folder: Path | None, where: str, size: int, max_bytes: int | None,
                 input_shape: tuple[int, ...] | None):  # fmt: skip
        self.where = where
        graph = model.graph
        self._check_opsets(model)
        budget = [BUDGET_PER_BYTE * size + MIN_BUDGET if max_bytes is None else max_bytes]
        self.constants: dict[str, np.ndarray] = {}
        for tensor in graph.initializer:
            self.constants[tensor.name] = _array(tensor, folder, where, budget)
        if len(graph.sparse_initializer):
            raise LoadError(f"{where}: sparse initializers are not read")
        self.budget, self.folder = budget, folder
        data_inputs = [i for i in graph.input if i.name not in self.constants]
        if len(data_inputs) != 1:
            raise LoadError(
                f"{where}: npxai imports graphs with one data input; this one has "
                f"{[i.name for i in data_inputs]}"
            )
        if len(graph.output) != 1:
            raise LoadError(
                f"{where}: npxai imports graphs with one output; this one has "
                f"{[o.name for o in graph.output]}"
            )
        self.input_name = data_inputs[0].name
        example = self._example(data_inputs[0], input_shape)
        self.activations: dict[str, tuple[str, np.ndarray]] = {self.input_name: ("input", example)}
        self.nodes: dict[str, tuple[Module, list[str]]] = {}
        self.graph_constants: dict[str, np.ndarray] = {}
        self.consumers: dict[str, list] = {}
        order = _ordered(list(graph.node), set(self.constants) | {self.input_name}, where)
        for node in order:
            for value in node.input:
                self.consumers.setdefault(value, []).append(node)
        self.order = order
        self.output_name = graph.output[0].name
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
        dtype = np.dtype(_ONNX_FLOATS[tensor.elem_type])
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
        value = node.input[index]
        if value not in self.activations:
            self.fail(node, f"its input {index} ({value!r}) must not be a constant")
        return self.activations[value]

    def fail(self, node: Any, message: str) -> None:
        raise LoadError(f"{self.where}: node {node.name!r} ({node.op_type}): {message}")

    def add(self, node: Any, module: Module, inputs: list[str], hint: str | None = None,
            output: str | None = None) -> str:  # fmt: skip
        """Add ``module`` as an npxai node reading the npxai values ``inputs``; run it on their
        examples; the ONNX value ``output`` (default: the node's first) becomes its output."""
        name = self._name(
            hint or self.weight_hint(node) or _scope_name(node.name) or node.output[0]
        )
        examples = []
        for value in inputs:
            if value in self.graph_constants:
                examples.append(self.graph_constants[value])
            else:
                examples.append(next(e for n, e in self.activations.values() if n == value))
        x = tuple(examples) if len(examples) > 1 else examples[0]
        try:
            module.check_input(x)
            y = module.forward(x, "numpy")
        except (LayerInputError, ValueError) as error:
            self.fail(node, f"{module!r} cannot take inputs of shapes "
                            f"{[e.shape for e in examples]}: {error}")  # fmt: skip
        self.nodes[name] = (module, inputs)
        self.activations[output or node.output[0]] = (name, y)
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
        self.activations[node.output[0]] = self.activation(node, index)

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

    # --- the walk ---------------------------------------------------------------------------
    def run(self) -> Graph:
        skip: set[int] = set()
        for node in self.order:
            if id(node) in skip:
                continue
            outputs = [v for v in node.output if v]
            if all(not v or v in self.constants for v in node.input) and node.op_type in FOLDS:
                try:
                    result = FOLDS[node.op_type](self, node)
                except LoadError:
                    raise
                except Exception as error:
                    self.fail(node, f"cannot fold its constant inputs ({error})")
                for value, array in zip(outputs, result, strict=False):
                    self.constants[value] = array
                continue
            handler = OPS.get(node.op_type)
            if handler is None:
                self.fail(
                    node,
                    "this op is not supported; npxai imports "
                    + ", ".join(sorted(set(OPS) | set(FOLDS))),
                )
            skip.update(handler(self, node) or ())
            for extra in outputs[1:]:
                if extra not in self.activations and self.consumers.get(extra):
                    self.fail(node, f"its output {extra!r} is read, which npxai does not give")
        if self.output_name not in self.activations:
            raise LoadError(f"{self.where}: the output {self.output_name!r} is a constant")
        return self._graph(self.activations[self.output_name][0])

    def _graph(self, output: str) -> Graph:
        needed = _ancestors(self.nodes, output) | {output}
        nodes = {name: node for name, node in self.nodes.items() if name in needed}
        used = {v for _, inputs in nodes.values() for v in inputs}
        constants = {k: v for k, v in self.graph_constants.items() if k in used}
        graph = Graph(nodes, output=output, input="input", constants=constants)
        object.__setattr__(graph, "input_shape", self.activations[self.input_name][1].shape[1:])
        return graph


def _scope_name(name: str) -> str:
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


def _ancestors(nodes: dict, name: str) -> set[str]:
    seen, stack = set(), [name]
    while stack:
        for value in nodes.get(stack.pop(), (None, []))[1]:
            if value not in seen:
                seen.add(value)
                stack.append(value)
    return seen


# --- constant folding: NumPy on constant inputs ----------------------------------------------
def _inputs(im: _Importer, node: Any) -> list:
    return [im.constants[v] if v else None for v in node.input]


def _fold_cast(im: _Importer, node: Any) -> list:
    to = _attributes(node)["to"]
    if to not in _DTYPES:
        im.fail(node, f"cast to data type {to}, which npxai does not read")
    return [_inputs(im, node)[0].astype(_DTYPES[to])]


def _fold_constant(im: _Importer, node: Any) -> list:
    attrs = _attributes(node)
    if "value" in attrs:
        node_value = next(a for a in node.attribute if a.name == "value").t
        return [_array(node_value, im.folder, im.where, im.budget)]
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64),
                       ("value_floats", np.float32), ("value_ints", np.int64)):  # fmt: skip
        if key in attrs:
            return [np.array(attrs[key], dtype)]
    im.fail(node, f"a Constant with {sorted(attrs)}, which npxai does not read")


def _axes(im: _Importer, node: Any, index: int) -> list[int] | None:
    """``axes`` from the attribute (older opsets) or input ``index`` (newer)."""
    attrs = _attributes(node)
    if "axes" in attrs:
        return list(attrs["axes"])
    axes = im.constant(node, index)
    return None if axes is None else [int(a) for a in axes]


def _fold_unsqueeze(im: _Importer, node: Any) -> list:
    x = _inputs(im, node)[0]
    axes = sorted(a % (x.ndim + len(_axes(im, node, 1))) for a in _axes(im, node, 1))
    for a in axes:
        x = np.expand_dims(x, a)
    return [x]


def _fold_squeeze(im: _Importer, node: Any) -> list:
    x = _inputs(im, node)[0]
    axes = _axes(im, node, 1)
    return [np.squeeze(x, axis=None if axes is None else tuple(axes))]


def _fold_gather(im: _Importer, node: Any) -> list:
    data, indices = _inputs(im, node)[:2]
    return [np.take(data, indices, axis=_attributes(node).get("axis", 0))]


def _fold_slice(im: _Importer, node: Any) -> list:
    data, starts, ends = _inputs(im, node)[:3]
    axes = im.constant(node, 3, np.arange(len(starts)))
    steps = im.constant(node, 4, np.ones(len(starts), np.int64))
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return [data[tuple(index)]]


def _fold_reshape(im: _Importer, node: Any) -> list:
    data, shape = _inputs(im, node)[:2]
    return [data.reshape(_target_shape(data.shape, shape, _attributes(node)))]


def _target_shape(shape: tuple, target: np.ndarray, attrs: dict) -> tuple[int, ...]:
    """ONNX Reshape's target: ``0`` copies the input's dim (unless ``allowzero``)."""
    allowzero = attrs.get("allowzero", 0)
    return tuple(
        int(shape[i]) if n == 0 and not allowzero else int(n) for i, n in enumerate(target)
    )


def _binary(function: Callable) -> Callable:
    return lambda im, node: [function(*_inputs(im, node)[:2])]


def _unary(function: Callable) -> Callable:
    return lambda im, node: [function(_inputs(im, node)[0])]


def _fold_concat(im: _Importer, node: Any) -> list:
    return [np.concatenate(_inputs(im, node), axis=_attributes(node)["axis"])]


def _fold_constant_of_shape(im: _Importer, node: Any) -> list:
    shape = [int(n) for n in _inputs(im, node)[0]]
    tensor = next((a.t for a in node.attribute if a.name == "value"), None)
    value = np.zeros(1, np.float32) if tensor is None else _array(tensor, None, im.where, im.budget)
    nbytes = math.prod(shape) * value.dtype.itemsize
    if nbytes > im.budget[0]:
        im.fail(node, f"a constant of shape {shape} needs {nbytes} bytes, more than the budget")
    im.budget[0] -= nbytes
    return [np.full(shape, value.reshape(-1)[0], value.dtype)]


FOLDS: dict[str, Callable] = {
    "Constant": _fold_constant,
    "Cast": _fold_cast,
    "Identity": _unary(lambda x: x),
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Gather": _fold_gather,
    "Slice": _fold_slice,
    "Reshape": _fold_reshape,
    "Concat": _fold_concat,
    "ConstantOfShape": _fold_constant_of_shape,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(lambda a, b: a // b if a.dtype.kind in "iu" else a / b),
    "Sqrt": _unary(np.sqrt),
    "Neg": _unary(np.negative),
    "Transpose": lambda im, node: [
        np.transpose(_inputs(im, node)[0], _attributes(node).get("perm"))
    ],
}


# --- layers ----------------------------------------------------------------------------------
def _pads2d(im: _Importer, node: Any, x: np.ndarray, kernel, stride, dilation) -> tuple:
    """``((top, bottom), (left, right))`` from ``pads`` or ``auto_pad``."""
    attrs = _attributes(node)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation, strict=True):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small = total // 2
            pads.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        return tuple(pads)
    if auto not in ("NOTSET", "VALID"):
        im.fail(node, f"auto_pad={auto!r}")
    p = attrs.get("pads", [0, 0, 0, 0]) if auto == "NOTSET" else [0, 0, 0, 0]
    return (p[0], p[2]), (p[1], p[3])


def _spatial(im: _Importer, node: Any, x: np.ndarray, kernel: list) -> tuple:
    if x.ndim != 4 or len(kernel) != 2:
        im.fail(node, f"only 2-D {node.op_type} on (N, C, H, W) is supported, got input {x.shape}")
    attrs = _attributes(node)
    stride = tuple(attrs.get("strides", [1, 1]))
    dilation = tuple(attrs.get("dilations", [1, 1]))
    return tuple(kernel), stride, dilation, _pads2d(im, node, x, kernel, stride, dilation)


def _symmetric(im: _Importer, node: Any, pads: tuple) -> tuple[int, int]:
    if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
        im.fail(node, f"asymmetric padding {pads} of a pool is not supported")
    return pads[0][0], pads[1][0]


def _conv(im: _Importer, node: Any) -> None:
    value, x = im.activation(node, 0)
    weight, bias = im.constant(node, 1), im.constant(node, 2)
    kernel, stride, dilation, pads = _spatial(im, node, x, list(weight.shape[2:]))
    group = _attributes(node).get("group", 1)
    padding = (
        (pads[0][0], pads[1][0]) if pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1] else pads
    )
    conv = L.Conv2d(weight.shape[1] * group, weight.shape[0], kernel, stride, padding, dilation,
                    group, bias is not None)  # fmt: skip
    conv.weight = weight
    if bias is not None:
        conv.bias = bias
    im.add(node, conv, [value])


def _linear(
    im: _Importer, node: Any, x: tuple, weight: np.ndarray, bias: np.ndarray | None
) -> None:
    """``y = x W^T + b`` with ``W`` of shape ``(out, in)``."""
    linear = L.Linear(weight.shape[1], weight.shape[0], bias is not None)
    linear.weight = np.ascontiguousarray(weight)
    if bias is not None:
        linear.bias = np.broadcast_to(bias, (weight.shape[0],)).copy()
    im.add(node, linear, [x[0]])


def _gemm(im: _Importer, node: Any) -> None:
    attrs = _attributes(node)
    if attrs.get("transA", 0):
        im.fail(node, "transA=1 (a transposed activation) is not supported")
    x = im.activation(node, 0)
    b = im.constant(node, 1)
    weight = (b if attrs.get("transB", 0) else b.T) * attrs.get("alpha", 1.0)
    c = im.constant(node, 2)
    bias = None if c is None else c * attrs.get("beta", 1.0)
    _linear(im, node, x, weight.astype(b.dtype), bias)


def _matmul(im: _Importer, node: Any) -> None:
    if im.is_constant(node.input[1]) and im.constants[node.input[1]].ndim == 2:
        x = im.activation(node, 0)
        _linear(im, node, x, im.constants[node.input[1]].T, None)
        return
    a, b = im.activation(node, 0), im.activation(node, 1)
    im.add(node, L.MatMul(), [a[0], b[0]])


def _producer_layer(im: _Importer, value: str) -> tuple[str, Module] | None:
    name = im.activations[value][0]
    return (name, im.nodes[name][0]) if name in im.nodes else None


def _fold_bias(im: _Importer, node: Any, value: str, constant: np.ndarray, sign: float) -> bool:
    """A constant added to a Conv's or Linear's output along its channels becomes its bias, where
    nothing else reads that output."""
    produced = _producer_layer(im, value)
    if produced is None or len(im.consumers.get(value, [])) != 1:
        return False
    name, layer = produced
    y = im.activations[value][1]
    if isinstance(layer, L.Linear):
        channels, shape = layer.out_features, (layer.out_features,)
        fits = (
            constant.shape[-1:] == shape and constant.size == channels and constant.ndim <= y.ndim
        )
    elif isinstance(layer, L.Conv2d):
        channels, shape = layer.out_channels, (layer.out_channels, 1, 1)
        fits = constant.shape[-3:] == shape and constant.size == channels and constant.ndim <= 4
    else:
        return False
    if not fits:
        return False
    add = sign * constant.reshape(-1).astype(layer.weight.dtype)
    if layer.bias is None:
        layer.register_parameter("bias", add)
    else:
        layer.bias = layer.bias + add
    im.activations[node.output[0]] = (name, layer.forward(_example_input(im, name), "numpy"))
    return True


def _example_input(im: _Importer, name: str) -> np.ndarray:
    source = im.nodes[name][1][0]
    return next(e for n, e in im.activations.values() if n == source)


def _add_or_sub(im: _Importer, node: Any) -> None:
    sign = -1.0 if node.op_type == "Sub" else 1.0
    a, b = node.input[0], node.input[1]
    if im.is_constant(a) or im.is_constant(b):
        if sign < 0 and im.is_constant(a):
            im.fail(node, "a constant minus an activation is not supported")
        value, constant = (b, im.constants[a]) if im.is_constant(a) else (a, im.constants[b])
        if _fold_bias(im, node, value, constant, sign):
            return
        im.fail(node, "adding a constant is supported only as the bias of a Conv or Linear "
                      "(along its output channels) whose output nothing else reads")  # fmt: skip
    if sign < 0:
        im.fail(node, "the difference of two activations is not supported")
    (na, xa), (nb, xb) = im.activation(node, 0), im.activation(node, 1)
    if xa.shape != xb.shape:
        im.fail(node, f"adding activations of shapes {xa.shape} and {xb.shape} (broadcasting "
                      "between activations is not supported)")  # fmt: skip
    im.add(node, L.Add(), [na, nb])


def _gate_second(im: _Importer, first: str, second: str) -> tuple[str, str]:
    """Mul's factors ordered (signal, gate): the gate is the output of a Sigmoid or Hardsigmoid
    (a squeeze-and-excitation gate), so that ProductRule's default (gate=1) finds it."""
    gates = (L.Sigmoid, L.Hardsigmoid)
    first_layer = im.nodes.get(first, (None,))[0]
    second_layer = im.nodes.get(second, (None,))[0]
    if isinstance(first_layer, gates) and not isinstance(second_layer, gates):
        return second, first
    return first, second


def _mul_or_div(im: _Importer, node: Any) -> list[int] | None:
    divide = node.op_type == "Div"
    a, b = node.input[0], node.input[1]
    if im.is_constant(a) or im.is_constant(b):
        if divide and im.is_constant(a):
            im.fail(node, "a constant divided by an activation is not supported")
        value, constant = (b, im.constants[a]) if im.is_constant(a) else (a, im.constants[b])
        if divide:
            constant = 1 / constant
        name = im.graph_constant(b if im.is_constant(b) else a, constant)
        im.add(node, L.Mul(), [im.activations[value][0], name])
        return None
    if divide:
        im.fail(node, "the quotient of two activations is not supported")
    (na, _), (nb, _) = im.activation(node, 0), im.activation(node, 1)
    im.add(node, L.Mul(), list(_gate_second(im, na, nb)))
    return None


def _single(factory: Callable[[_Importer, Any, np.ndarray], Module]) -> Callable:
    def handler(im: _Importer, node: Any) -> None:
        value, x = im.activation(node, 0)
        im.add(node, factory(im, node, x), [value])

    return handler


def _sigmoid(im: _Importer, node: Any) -> list[int] | None:
    """``Sigmoid``, or with the ``Mul`` that reads it and its input ``x * sigmoid(x)``: ``SiLU``."""
    value, x = im.activation(node, 0)
    readers = im.consumers.get(node.output[0], [])
    if (
        len(readers) == 1
        and readers[0].op_type == "Mul"
        and set(readers[0].input) == {node.input[0], node.output[0]}
    ):
        im.add(readers[0], L.SiLU(), [value], hint=node.name)
        return [id(readers[0])]
    im.add(node, L.Sigmoid(), [value])
    return None


def _erf(im: _Importer, node: Any) -> list[int] | None:
    """torch's erf form of GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))``: ``Div(x, sqrt 2) -> Erf ->
    Add(., 1)``, then ``Mul`` by ``x`` and by ``0.5`` in either order (TorchScript's exporter
    multiplies by ``x`` first, the dynamo one by ``0.5``)."""
    divide = next((n for n in im.order if node.input[0] in n.output), None)
    add = _only_reader(im, node.output[0], "Add")
    first = add and _only_reader(im, add.output[0], "Mul")
    second = first and _only_reader(im, first.output[0], "Mul")
    if (second is not None and divide is not None and divide.op_type == "Div"
            and divide.input[0] in im.activations
            and np.allclose(im.constants.get(divide.input[1], 0), math.sqrt(2))
            and np.allclose(_constant_input(im, add, node.output[0]), 1)):  # fmt: skip
        x = divide.input[0]
        others = [[v for v in first.input if v != add.output[0]],
                  [v for v in second.input if v != first.output[0]]]  # fmt: skip
        half = [o for o in others if len(o) == 1 and o[0] in im.constants]
        if (len(half) == 1 and np.allclose(im.constants[half[0][0]], 0.5)
                and [x] in others):  # fmt: skip
            im.add(second, L.GELU(), [im.activations[x][0]], hint=node.name)
            return [id(add), id(first), id(second)]
    im.fail(node, "Erf outside torch's pattern of GELU (x * 0.5 * (1 + erf(x / sqrt 2))) is "
                  "not supported")  # fmt: skip


def _clip(im: _Importer, node: Any, x: np.ndarray) -> Module:
    attrs = _attributes(node)
    low = im.constant(node, 1, attrs.get("min"))
    high = im.constant(node, 2, attrs.get("max"))
    low = -math.inf if low is None else float(low)
    high = math.inf if high is None else float(high)
    if low == 0 and high == 6:
        return L.ReLU6()
    if low == 0 and high == math.inf:
        return L.ReLU()
    return L.Hardtanh(low, high)


def _hardsigmoid(im: _Importer, node: Any, x: np.ndarray) -> Module:
    attrs = _attributes(node)
    if not (math.isclose(attrs.get("alpha", 0.2), 1 / 6, rel_tol=1e-6)
            and attrs.get("beta", 0.5) == 0.5):  # fmt: skip
        im.fail(node, f"HardSigmoid with alpha={attrs.get('alpha', 0.2)}, beta="
                      f"{attrs.get('beta', 0.5)}; npxai's Hardsigmoid is torch's (1/6, 0.5)")  # fmt: skip
    return L.Hardsigmoid()


def _pool(im: _Importer, node: Any) -> None:
    value, x = im.activation(node, 0)
    attrs = _attributes(node)
    kernel, stride, dilation, pads = _spatial(im, node, x, list(attrs["kernel_shape"]))
    padding, ceil = _symmetric(im, node, pads), bool(attrs.get("ceil_mode", 0))
    if node.op_type == "MaxPool":
        if attrs.get("storage_order", 0):
            im.fail(node, "storage_order=1")
        pool = L.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil)
    else:
        if dilation != (1, 1):
            im.fail(node, f"dilations {dilation} of an average pool")
        pool = L.AvgPool2d(kernel, stride, padding, ceil, bool(attrs.get("count_include_pad", 0)))
    im.add(node, pool, [value])


def _only_reader(im: _Importer, value: str, op: str) -> Any | None:
    readers = im.consumers.get(value, [])
    return readers[0] if len(readers) == 1 and readers[0].op_type == op else None


def _constant_input(im: _Importer, node: Any, value: str) -> np.ndarray | None:
    """The constant that ``node`` reads beside ``value``, if it reads one."""
    others = [v for v in node.input if v != value]
    return im.constants.get(others[0]) if len(others) == 1 else None


def _layer_norm_pattern(im: _Importer, node: Any, x: np.ndarray, axes: list[int]) -> list | None:
    """LayerNorm as exporters of opsets before 17 write it: ``d = x - mean(x)``, ``d /
    sqrt(mean(d^2) + eps)``, then ``* weight + bias`` (both optional), means over the trailing
    ``axes``. Returns the nodes it replaces (after adding the LayerNorm), or ``None``."""
    source = node.input[0]
    if axes != list(range(x.ndim - len(axes), x.ndim)):
        return None
    sub = _only_reader(im, node.output[0], "Sub")
    if sub is None or list(sub.input) != [source, node.output[0]]:
        return None
    readers = im.consumers.get(sub.output[0], [])
    pow_ = next((n for n in readers if n.op_type == "Pow"), None)
    div = next((n for n in readers if n.op_type == "Div"), None)
    if len(readers) != 2 or pow_ is None or div is None or div.input[0] != sub.output[0]:
        return None
    if not np.array_equal(_constant_input(im, pow_, sub.output[0]), 2):
        return None
    mean2 = _only_reader(im, pow_.output[0], "ReduceMean")
    add = mean2 and _only_reader(im, mean2.output[0], "Add")
    sqrt = add and _only_reader(im, add.output[0], "Sqrt")
    eps = add and _constant_input(im, add, mean2.output[0])
    if sqrt is None or eps is None or eps.size != 1 or div.input[1] != sqrt.output[0]:
        return None
    if _axes(im, mean2, 1) is None or sorted(a % x.ndim for a in _axes(im, mean2, 1)) != axes:
        return None
    chain, last, weight, bias = [sub, pow_, mean2, add, sqrt, div], div, None, None
    mul = _only_reader(im, div.output[0], "Mul")
    if mul is not None and _constant_input(im, mul, div.output[0]) is not None:
        weight, last = _constant_input(im, mul, div.output[0]), mul
        chain.append(mul)
        plus = _only_reader(im, mul.output[0], "Add")
        if plus is not None and _constant_input(im, plus, mul.output[0]) is not None:
            bias, last = _constant_input(im, plus, mul.output[0]), plus
            chain.append(plus)
    shape = x.shape[axes[0] :]
    norm = L.LayerNorm(shape, float(eps.reshape(-1)[0]), weight is not None, bias is not None)
    if weight is not None:
        norm.weight = np.broadcast_to(weight, shape).copy()
    if bias is not None:
        norm.bias = np.broadcast_to(bias, shape).copy()
    im.add(node, norm, [im.activations[source][0]], output=last.output[0])
    return [id(n) for n in chain]


def _reduce_mean(im: _Importer, node: Any) -> list | None:
    value, x = im.activation(node, 0)
    axes = _axes(im, node, 1)
    keep = bool(_attributes(node).get("keepdims", 1))
    axes = list(range(x.ndim)) if axes is None else sorted(a % x.ndim for a in axes)
    if 0 in axes:
        im.fail(node, "a mean over the batch axis 0")
    replaced = keep and _layer_norm_pattern(im, node, x, axes)
    if replaced:
        return replaced
    if x.ndim == 4 and axes == [2, 3]:
        pool = im.add(node, L.AdaptiveAvgPool2d(1), [value],
                      output=node.output[0] if keep else f"{node.output[0]}/pooled")  # fmt: skip
        if not keep:
            im.add(node, L.Flatten(1), [pool], hint=f"{pool}.flatten")
        return
    im.add(node, L.Mean(tuple(axes), keep), [value])


def _reshape_like(im: _Importer, node: Any, shape: tuple[int, ...]) -> None:
    value, x = im.activation(node, 0)
    if not shape or shape[0] != x.shape[0] or math.prod(shape) != x.size:
        im.fail(node, f"reshaping {x.shape} to {shape} mixes the batch axis 0")
    if len(shape) == 2 and x.ndim > 2:
        im.add(node, L.Flatten(1), [value])
    else:
        im.add(node, L.Reshape(tuple(shape[1:])), [value])


def _reshape(im: _Importer, node: Any) -> list | None:
    """``Reshape`` to a per-sample shape; or, flattened over the batch and read back by one
    ``Gather`` along axis 0 that takes each sample's values in order (how the dynamo exporter
    writes ``as_strided`` on a contiguous tensor, in ConvNeXt's head), the reshape that pair is."""
    value, x = im.activation(node, 0)
    target = _target_shape(x.shape, im.constant(node, 1), _attributes(node))
    shape = x.reshape(target).shape
    gather = _only_reader(im, node.output[0], "Gather")
    if len(shape) == 1 and gather is not None and gather.input[0] == node.output[0]:
        indices = im.constants.get(gather.input[1])
        axis = _attributes(gather).get("axis", 0)
        size = x.size // x.shape[0]
        if (axis == 0 and indices is not None and indices.ndim > 1
                and indices.shape[0] == x.shape[0] and indices.size == x.size
                and np.array_equal(indices.reshape(x.shape[0], -1),
                                   np.arange(x.size).reshape(x.shape[0], size))):  # fmt: skip
            im.add(gather, L.Reshape(indices.shape[1:]), [value], output=gather.output[0])
            return [id(gather)]
    _reshape_like(im, node, shape)
    return None


def _flatten(im: _Importer, node: Any) -> None:
    x = im.activation(node, 0)[1]
    axis = _attributes(node).get("axis", 1) % max(x.ndim, 1)
    if axis == 0:
        im.fail(node, "Flatten with axis=0 mixes the batch axis")
    _reshape_like(im, node, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _squeeze(im: _Importer, node: Any) -> None:
    x = im.activation(node, 0)[1]
    axes = _axes(im, node, 1)
    _reshape_like(im, node, np.squeeze(x, axis=None if axes is None else tuple(axes)).shape)


def _unsqueeze(im: _Importer, node: Any) -> None:
    x = im.activation(node, 0)[1]
    axes = _axes(im, node, 1)
    y = x
    for a in sorted(a % (x.ndim + len(axes)) for a in axes):
        y = np.expand_dims(y, a)
    _reshape_like(im, node, y.shape)


def _concat(im: _Importer, node: Any) -> None:
    values = [im.activation(node, i)[0] for i in range(len(node.input))]
    x = im.activation(node, 0)[1]
    if len(values) == 1:
        return im.alias(node)  # torch.cat of one tensor
    axis = _attributes(node)["axis"] % x.ndim
    if axis == 0:
        im.fail(node, "concatenation along the batch axis 0")
    im.add(node, L.Concat(axis), values)


def _batch_norm(im: _Importer, node: Any, x: np.ndarray) -> Module:
    attrs = _attributes(node)
    if attrs.get("training_mode", 0):
        im.fail(node, "training_mode=1")
    scale, bias, mean, var = (im.constant(node, i) for i in range(1, 5))
    cls = L.BatchNorm2d if x.ndim == 4 else L.BatchNorm1d
    norm = cls(len(scale), attrs.get("epsilon", 1e-5))
    norm.weight, norm.bias, norm.running_mean, norm.running_var = scale, bias, mean, var
    return norm


def _layer_norm(im: _Importer, node: Any) -> None:
    value, x = im.activation(node, 0)
    attrs = _attributes(node)
    axis = attrs.get("axis", -1) % x.ndim
    if axis == 0:
        im.fail(node, "a LayerNormalization over the batch axis")
    scale, bias = im.constant(node, 1), im.constant(node, 2)
    norm = L.LayerNorm(x.shape[axis:], attrs.get("epsilon", 1e-5), True, bias is not None)
    norm.weight = np.broadcast_to(scale, x.shape[axis:]).copy()
    if bias is not None:
        norm.bias = np.broadcast_to(bias, x.shape[axis:]).copy()
    im.add(node, norm, [value])


def _softmax(im: _Importer, node: Any, x: np.ndarray) -> Module:
    axis = _attributes(node).get("axis", -1 if im.opset >= 13 else 1) % x.ndim
    if im.opset < 13 and axis != x.ndim - 1:
        im.fail(node, f"Softmax of opset {im.opset} (over the flattened axes {axis}..) "
                      "on more than the last axis")  # fmt: skip
    if axis == 0:
        im.fail(node, "a softmax over the batch axis")
    return L.Softmax(axis)


def _transpose(im: _Importer, node: Any, x: np.ndarray) -> Module:
    perm = list(_attributes(node).get("perm", range(x.ndim - 1, -1, -1)))
    if perm[0] != 0:
        im.fail(node, f"perm {perm} moves the batch axis 0")
    return L.Permute(perm)


def _pad(im: _Importer, node: Any, x: np.ndarray) -> Module:
    """``Pad`` (constant mode) of the last two axes of ``(N, C, H, W)``: ``ConstantPad2d``."""
    attrs = _attributes(node)
    if attrs.get("mode", "constant") != "constant":
        im.fail(node, f"Pad mode {attrs['mode']!r} (only 'constant')")
    pads = attrs.get("pads")
    pads = [int(p) for p in (im.constant(node, 1) if pads is None else pads)]
    axes = im.constant(node, 3)
    full = [0] * (2 * x.ndim)
    for i, axis in enumerate(range(x.ndim) if axes is None else (int(a) % x.ndim for a in axes)):
        full[axis], full[x.ndim + axis] = pads[i], pads[len(pads) // 2 + i]
    if x.ndim != 4 or any(full[a] or full[4 + a] for a in (0, 1)) or min(full) < 0:
        im.fail(node, f"pads {pads} of an input {x.shape}: only non-negative pads of the last two "
                      "axes of (N, C, H, W) are supported")  # fmt: skip
    value = im.constant(node, 2, attrs.get("value", 0.0))
    value = float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0
    padding = (full[3], full[7], full[2], full[6])  # torch's (left, right, top, bottom)
    return L.ZeroPad2d(padding) if value == 0 else L.ConstantPad2d(padding, value)


def _resize(im: _Importer, node: Any, x: np.ndarray) -> Module:
    """``Resize`` of the last two axes of ``(N, C, H, W)``: ``Upsample``, nearest as torch exports
    it (``asymmetric``, ``floor``) or bilinear (``half_pixel``/``pytorch_half_pixel``:
    ``align_corners=False``; ``align_corners``: ``True``)."""
    attrs = _attributes(node)
    mode = attrs.get("mode", "nearest")
    transform = attrs.get("coordinate_transformation_mode", "half_pixel")
    if x.ndim != 4 or attrs.get("antialias", 0) or attrs.get(
        "keep_aspect_ratio_policy", "stretch") != "stretch":  # fmt: skip
        im.fail(node, f"a Resize of input {x.shape} with {attrs}: only of (N, C, H, W), without "
                      "antialiasing")  # fmt: skip
    if mode == "nearest" and (transform, attrs.get("nearest_mode", "round_prefer_floor")) == (
        "asymmetric", "floor"):  # fmt: skip
        kind, corners = "nearest", None
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        kind, corners = "bilinear", transform == "align_corners"
    else:
        im.fail(node, f"mode {mode!r} with coordinate_transformation_mode {transform!r} and "
                      f"nearest_mode {attrs.get('nearest_mode')!r}: npxai has torch's nearest "
                      "(asymmetric, floor) and bilinear")  # fmt: skip
    scales, sizes = im.constant(node, 2), im.constant(node, 3)
    if sizes is not None and np.size(sizes):
        if list(sizes[:2]) != list(x.shape[:2]):
            im.fail(node, f"sizes {list(sizes)} resize the batch or channel axis")
        return L.Upsample(size=(int(sizes[2]), int(sizes[3])), mode=kind, align_corners=corners)
    if scales is None or list(scales[:2]) != [1, 1]:
        im.fail(node, f"scales {None if scales is None else list(scales)}: the batch and channel "
                      "axes must keep their size")  # fmt: skip
    factors = (float(scales[2]), float(scales[3]))
    return L.Upsample(scale_factor=factors, mode=kind, align_corners=corners)


def _identity(im: _Importer, node: Any) -> None:
    im.alias(node)


def _cast(im: _Importer, node: Any) -> None:
    to = _attributes(node)["to"]
    x = im.activation(node, 0)[1]
    if _DTYPES.get(to) is not x.dtype.type:
        im.fail(node, f"a cast of a {x.dtype} activation to data type {to}")
    im.alias(node)


def _gelu(im: _Importer, node: Any, x: np.ndarray) -> Module:
    return L.GELU(_attributes(node).get("approximate", "none"))


def _leaky(im: _Importer, node: Any, x: np.ndarray) -> Module:
    return L.LeakyReLU(_attributes(node).get("alpha", 0.01))


def _global_average(im: _Importer, node: Any, x: np.ndarray) -> Module:
    if x.ndim != 4:
        im.fail(node, f"GlobalAveragePool of input {x.shape}; (N, C, H, W) expected")
    return L.AdaptiveAvgPool2d(1)


OPS: dict[str, Callable] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add_or_sub,
    "Sub": _add_or_sub,
    "Mul": _mul_or_div,
    "Div": _mul_or_div,
    "Relu": _single(lambda im, node, x: L.ReLU()),
    "Sigmoid": _sigmoid,
    "Tanh": _single(lambda im, node, x: L.Tanh()),
    "LeakyRelu": _single(_leaky),
    "HardSigmoid": _single(_hardsigmoid),
    "HardSwish": _single(lambda im, node, x: L.Hardswish()),
    "Gelu": _single(_gelu),
    "Erf": _erf,
    "Clip": _single(_clip),
    "Softmax": _single(_softmax),
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _single(_global_average),
    "ReduceMean": _reduce_mean,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _single(_transpose),
    "Concat": _concat,
    "BatchNormalization": _single(_batch_norm),
    "LayerNormalization": _layer_norm,
    "Pad": _single(_pad),
    "Resize": _single(_resize),
    "Dropout": _identity,
    "Identity": _identity,
    "Cast": _cast,
}


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

    The graph's ``input_shape`` is the per-sample input shape it was imported for.

    Raises :class:`~npxai.errors.LoadError` naming the file and the node (its name and op type)
    for anything it cannot import: an op it does not know (the message lists those it does), a
    custom domain or an ONNX function, a cycle, a dangling input or missing initializer, an
    initializer whose data does not match its dims, external data outside the model's folder,
    a truncated or corrupt file.
    """
    model, folder, where, size = _parse(source)
    return _Importer(model, folder, where, size, max_bytes, input_shape).run()
