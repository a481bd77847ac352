"""Reading an ONNX file: the protobuf parsed by the ``onnx`` package, every initializer's size
checked against its dims (and the budget) before an array is made, external data read only
from the model's own folder, the nodes put in an order they can run in."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LoadError, MissingExtraError
from ..io import check_file

#: The opsets of the default domain that are read.
OPSET_MIN, OPSET_MAX = 11, 23
#: Bytes the example input of the shape walk may take (a larger input needs ``input_shape=``).
EXAMPLE_BYTES = 1 << 30
#: By default, the initializers may take this many times the model's size (file and external
#: data) plus 64 MiB.
BUDGET_PER_BYTE, MIN_BUDGET = 2, 64 << 20

FLOATS = {1: np.float32, 10: np.float16, 11: np.float64}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingExtraError(
            "from_onnx needs the onnx package: pip install 'npxai[onnx]'"
        ) from None
    return onnx


# --- reading the file, checking sizes before anything is made --------------------------------
def parse(source: Any) -> tuple[Any, Path | None, str, int]:
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


def array(tensor: Any, folder: Path | None, where: str, budget: list[int]) -> np.ndarray:
    """An initializer (or ``Constant``'s value) as an array, its byte count checked against its
    dims (and the budget) before anything is allocated."""
    from onnx import numpy_helper

    name = f"{where}: initializer {tensor.name!r}"
    if tensor.data_type not in DTYPES:
        raise LoadError(f"{name} has data type {tensor.data_type}, which npxai does not read")
    dtype = np.dtype(DTYPES[tensor.data_type])
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
        held = len(getattr(tensor, FIELDS[tensor.data_type])) * dtype.itemsize
    if held != nbytes:
        raise LoadError(
            f"{name}: dims {list(tensor.dims)} ({count} values of {dtype}) do not match the "
            f"{held // max(dtype.itemsize, 1)} values it holds"
        )
    return np.array(numpy_helper.to_array(tensor))


DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_,
           10: np.float16, 11: np.float64}  # fmt: skip
FIELDS = {1: "float_data", 2: "int32_data", 3: "int32_data", 6: "int32_data", 7: "int64_data",
           9: "int32_data", 10: "int32_data", 11: "double_data"}  # fmt: skip


def attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


# --- the graph's order and its wiring --------------------------------------------------------
def ordered(nodes: list, known: set[str], where: str) -> list:
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
