"""Constant folding: the nodes whose inputs are all constants, run with NumPy at import (an
exporter's shape arithmetic)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .importer import Importer
from .read import DTYPES, array, attributes


def _inputs(im: Importer, node: Any) -> list:
    return [im.constants[v] if v else None for v in node.input]


def _fold_cast(im: Importer, node: Any) -> list:
    to = attributes(node)["to"]
    if to not in DTYPES:
        im.fail(node, f"cast to data type {to}, which npxai does not read")
    return [_inputs(im, node)[0].astype(DTYPES[to])]


def _fold_constant(im: Importer, node: Any) -> list:
    attrs = attributes(node)
    if "value" in attrs:
        node_value = next(a for a in node.attribute if a.name == "value").t
        return [array(node_value, im.folder, im.where, im.budget)]
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64),
                       ("value_floats", np.float32), ("value_ints", np.int64)):  # fmt: skip
        if key in attrs:
            return [np.array(attrs[key], dtype)]
    im.fail(node, f"a Constant with {sorted(attrs)}, which npxai does not read")


def axes_of(im: Importer, node: Any, index: int) -> list[int] | None:
    """``axes`` from the attribute (older opsets) or input ``index`` (newer)."""
    attrs = attributes(node)
    if "axes" in attrs:
        return list(attrs["axes"])
    axes = im.constant(node, index)
    return None if axes is None else [int(a) for a in axes]


def _fold_unsqueeze(im: Importer, node: Any) -> list:
    x = _inputs(im, node)[0]
    axes = sorted(a % (x.ndim + len(axes_of(im, node, 1))) for a in axes_of(im, node, 1))
    for a in axes:
        x = np.expand_dims(x, a)
    return [x]


def _fold_squeeze(im: Importer, node: Any) -> list:
    x = _inputs(im, node)[0]
    axes = axes_of(im, node, 1)
    return [np.squeeze(x, axis=None if axes is None else tuple(axes))]


def _fold_gather(im: Importer, node: Any) -> list:
    data, indices = _inputs(im, node)[:2]
    return [np.take(data, indices, axis=attributes(node).get("axis", 0))]


def _fold_slice(im: Importer, node: Any) -> list:
    data, starts, ends = _inputs(im, node)[:3]
    axes = im.constant(node, 3, np.arange(len(starts)))
    steps = im.constant(node, 4, np.ones(len(starts), np.int64))
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return [data[tuple(index)]]


def _fold_reshape(im: Importer, node: Any) -> list:
    data, shape = _inputs(im, node)[:2]
    return [data.reshape(target_shape(data.shape, shape, attributes(node)))]


def target_shape(shape: tuple, target: np.ndarray, attrs: dict) -> tuple[int, ...]:
    """ONNX Reshape's target: ``0`` copies the input's dim (unless ``allowzero``)."""
    allowzero = attrs.get("allowzero", 0)
    return tuple(
        int(shape[i]) if n == 0 and not allowzero else int(n) for i, n in enumerate(target)
    )


def _binary(function: Callable) -> Callable:
    return lambda im, node: [function(*_inputs(im, node)[:2])]


def _unary(function: Callable) -> Callable:
    return lambda im, node: [function(_inputs(im, node)[0])]


def _fold_concat(im: Importer, node: Any) -> list:
    return [np.concatenate(_inputs(im, node), axis=attributes(node)["axis"])]


def _fold_constant_of_shape(im: Importer, node: Any) -> list:
    shape = [int(n) for n in _inputs(im, node)[0]]
    tensor = next((a.t for a in node.attribute if a.name == "value"), None)
    value = np.zeros(1, np.float32) if tensor is None else array(tensor, None, im.where, im.budget)
    nbytes = math.prod(shape) * value.dtype.itemsize
    if nbytes > im.budget[0]:
        im.fail(node, f"a constant of shape {shape} needs {nbytes} bytes, more than the budget")
    im.budget[0] -= nbytes
    return [np.full(shape, value.reshape(-1)[0], value.dtype)]


def _fold_expand(im: Importer, node: Any) -> list:
    """``Expand``: the data broadcast to the shape (both ways, as ONNX broadcasts); a class
    token expanded along the batch is the token for the example's batch of 1."""
    data, shape = _inputs(im, node)[:2]
    shape = np.broadcast_shapes(data.shape, tuple(int(n) for n in shape))
    nbytes = math.prod(shape) * data.dtype.itemsize
    if nbytes > im.budget[0]:
        im.fail(node, f"a constant of shape {shape} needs {nbytes} bytes, more than the budget")
    im.budget[0] -= nbytes
    return [np.broadcast_to(data, shape).copy()]


def _fold_shape(im: Importer, node: Any) -> list:
    shape = _inputs(im, node)[0].shape
    attrs = attributes(node)
    return [np.array(shape[attrs.get("start", 0) : attrs.get("end", len(shape))], np.int64)]


def _fold_mod(im: Importer, node: Any) -> list:
    a, b = _inputs(im, node)[:2]
    return [np.fmod(a, b) if attributes(node).get("fmod", 0) else np.mod(a, b)]


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
    "Mod": _fold_mod,
    "Shape": _fold_shape,
    "Equal": _binary(np.equal),
    "Where": lambda im, node: [np.where(*_inputs(im, node)[:3])],
    "Expand": _fold_expand,
    "Sqrt": _unary(np.sqrt),
    "Neg": _unary(np.negative),
    "Transpose": lambda im, node: [
        np.transpose(_inputs(im, node)[0], attributes(node).get("perm"))
    ],
}
