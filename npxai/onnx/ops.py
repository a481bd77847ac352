"""The ONNX ops that become npxai layers (:data:`OPS`), and the patterns of older exporters that
become the layer they spell.

Most layers take their input with the batch alone on axis 0 (:meth:`Importer.activation`); the
ops of a transformer's attention take it as the exporter holds it (:mod:`npxai.onnx.layout`):
``Transpose``, ``Reshape``, ``Squeeze``, ``Unsqueeze`` and ``Flatten`` change only how the ONNX
value lies in its npxai value (an npxai ``Reshape`` where axes are split), element-wise ops,
``Add`` and ``Mul`` (of constants too), ``MatMul``, ``Gemm``, ``Softmax``, ``Gather`` and
``Slice`` run on the npxai value's own axes, and ``Permute`` and ``Reshape`` nodes are added
where an op needs an axis of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from .. import layers as L
from ..module import Module
from .fold import axes_of, target_shape
from .importer import Importer
from .layout import Layout, regroup
from .read import DTYPES, attributes


def _pads2d(im: Importer, node: Any, x: np.ndarray, kernel, stride, dilation) -> tuple:
    """``((top, bottom), (left, right))`` from ``pads`` or ``auto_pad``."""
    attrs = attributes(node)
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


def _spatial(im: Importer, node: Any, x: np.ndarray, kernel: list) -> tuple:
    if x.ndim != 4 or len(kernel) != 2:
        im.fail(node, f"only 2-D {node.op_type} on (N, C, H, W) is supported, got input {x.shape}")
    attrs = attributes(node)
    stride = tuple(attrs.get("strides", [1, 1]))
    dilation = tuple(attrs.get("dilations", [1, 1]))
    return tuple(kernel), stride, dilation, _pads2d(im, node, x, kernel, stride, dilation)


def _symmetric(im: Importer, node: Any, pads: tuple) -> tuple[int, int]:
    if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
        im.fail(node, f"asymmetric padding {pads} of a pool is not supported")
    return pads[0][0], pads[1][0]


def _conv(im: Importer, node: Any) -> None:
    value, x = im.activation(node, 0)
    weight, bias = im.constant(node, 1), im.constant(node, 2)
    kernel, stride, dilation, pads = _spatial(im, node, x, list(weight.shape[2:]))
    group = attributes(node).get("group", 1)
    padding = (
        (pads[0][0], pads[1][0]) if pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1] else pads
    )
    conv = L.Conv2d(weight.shape[1] * group, weight.shape[0], kernel, stride, padding, dilation,
                    group, bias is not None)  # fmt: skip
    conv.weight = weight
    if bias is not None:
        conv.bias = bias
    im.add(node, conv, [value])


def _last_axis(im: Importer, node: Any, index: int) -> tuple[str, np.ndarray, Layout]:
    """Input ``index`` held with its last axis the npxai value's last (not the batch)."""
    name, x, layout = im.view(node, index)
    if layout.members()[-1] != (x.ndim - 1,):
        name, x, layout = im.canonical(node, node.input[index])
    if layout.members()[-1] != (x.ndim - 1,) or x.ndim == 1:
        return (*im.activation(node, index), Layout.identity(x.ndim))
    return name, x, layout


def _linear(im: Importer, node: Any, index: int, weight: np.ndarray,
            bias: np.ndarray | None) -> None:  # fmt: skip
    """``y = x W^T + b`` on the last axis of input ``index``, with ``W`` of shape ``(out, in)``."""
    name, _, layout = _last_axis(im, node, index)
    linear = L.Linear(weight.shape[1], weight.shape[0], bias is not None)
    linear.weight = np.ascontiguousarray(weight)
    if bias is not None:
        linear.bias = np.broadcast_to(bias, (weight.shape[0],)).copy()
    im.add(node, linear, [name], layout=layout)


def _gemm(im: Importer, node: Any) -> None:
    attrs = attributes(node)
    if attrs.get("transA", 0):
        im.fail(node, "transA=1 (a transposed activation) is not supported")
    b = im.constant(node, 1)
    weight = (b if attrs.get("transB", 0) else b.T) * attrs.get("alpha", 1.0)
    c = im.constant(node, 2)
    bias = None if c is None else c * attrs.get("beta", 1.0)
    _linear(im, node, 0, weight.astype(b.dtype), bias)


def _matmul(im: Importer, node: Any) -> None:
    """``MatMul`` by a constant matrix: ``Linear``; of two activations (an attention's ``q k^T``
    and ``A v``): ``MatMul`` on the npxai values, their leading axes held alike."""
    if im.is_constant(node.input[1]) and im.constants[node.input[1]].ndim == 2:
        _linear(im, node, 0, im.constants[node.input[1]].T, None)
        return
    sides = [_matrices(im, node, index) for index in (0, 1)]
    (na, xa, la), (nb, xb, lb) = sides
    if xa.ndim != xb.ndim or (la.order[:-2], la.groups[:-2]) != (lb.order[:-2], lb.groups[:-2]):
        (na, xa), (nb, xb) = im.activation(node, 0), im.activation(node, 1)
        la = Layout.identity(xa.ndim)
    im.add(node, L.MatMul(), [na, nb], layout=la)


def _matrices(im: Importer, node: Any, index: int) -> tuple[str, np.ndarray, Layout]:
    """Input ``index`` of a matrix product held with its last two axes the npxai value's last
    two, in order."""
    name, x, layout = im.view(node, index)
    ends = (x.ndim - 2, x.ndim - 1)
    if x.ndim < 3 or layout.order[-2:] != ends or layout.groups[-2:] != (1, 1):
        name, x, layout = im.canonical(node, node.input[index])
    if x.ndim < 3 or layout.order[-2:] != (x.ndim - 2, x.ndim - 1) or layout.groups[-2:] != (1, 1):
        return (*im.activation(node, index), Layout.identity(x.ndim))
    return name, x, layout


def _producer_layer(im: Importer, value: str) -> tuple[str, Module] | None:
    name = im.activations[value][0]
    return (name, im.nodes[name][0]) if name in im.nodes else None


def _fold_bias(im: Importer, node: Any, value: str, constant: np.ndarray, sign: float) -> bool:
    """A constant added to a Conv's or Linear's output along its channels becomes its bias, where
    nothing else reads that output."""
    produced = _producer_layer(im, value)
    if produced is None or len(im.consumers.get(value, [])) != 1:
        return False
    name, layer = produced
    y, layout = im.activations[value][1], im.layout(value)
    if isinstance(layer, L.Linear):
        channels, shape = layer.out_features, (layer.out_features,)
        last = layout.members()[-1] == (y.ndim - 1,)  # T's last axis is the Linear's
        fits = (constant.shape[-1:] == shape and constant.size == channels
                and constant.ndim <= len(layout.groups) and last)  # fmt: skip
    elif isinstance(layer, L.Conv2d):
        channels, shape = layer.out_channels, (layer.out_channels, 1, 1)
        fits = (constant.shape[-3:] == shape and constant.size == channels
                and constant.ndim <= 4 and layout.is_identity)  # fmt: skip
    else:
        return False
    if not fits:
        return False
    add = sign * constant.reshape(-1).astype(layer.weight.dtype)
    if layer.bias is None:
        layer.register_parameter("bias", add)
    else:
        layer.bias = layer.bias + add
    im.examples[name] = layer.forward(im.examples[im.nodes[name][1][0]], "numpy")
    im.activations[node.output[0]] = (name, im.examples[name])
    im.set_layout(node.output[0], layout)
    return True


def _add_or_sub(im: Importer, node: Any) -> None:
    """A sum or difference: a constant added to a ``Conv``'s or ``Linear``'s output along its
    channels is its bias; any other constant (a positional embedding, an attention's mask) is a
    graph constant read by ``Add`` (subtracted: its negative); two activations of one shape are
    ``Add``."""
    sign = -1.0 if node.op_type == "Sub" else 1.0
    a, b = node.input[0], node.input[1]
    if im.is_constant(a) or im.is_constant(b):
        if sign < 0 and im.is_constant(a):
            im.fail(node, "a constant minus an activation is not supported")
        value, constant = (b, im.constants[a]) if im.is_constant(a) else (a, im.constants[b])
        if _fold_bias(im, node, value, constant, sign):
            return
        name, _, layout = im.view(node, list(node.input).index(value))
        added = im.graph_constant(b if value == a else a,
                                  im.per_sample(node, sign * constant, value))  # fmt: skip
        inputs = [name, added] if value == a else [added, name]
        im.add(node, L.Add(), inputs, layout=layout)
        return
    if sign < 0:
        im.fail(node, "the difference of two activations is not supported")
    (na, xa, layout), (nb, xb) = _alike(im, node)
    if xa.shape != xb.shape:
        im.fail(node, f"adding activations of shapes {xa.shape} and {xb.shape} (broadcasting "
                      "between activations is not supported)")  # fmt: skip
    im.add(node, L.Add(), [na, nb], layout=layout)


def _alike(im: Importer, node: Any) -> tuple[tuple[str, np.ndarray, Layout],
                                              tuple[str, np.ndarray]]:  # fmt: skip
    """A binary op's two activations held alike in their npxai values: as they are, as
    :meth:`Importer.canonical` holds them, or with the batch alone on axis 0."""
    (na, xa, la), (nb, xb, lb) = im.view(node, 0), im.view(node, 1)
    if (la.order, la.groups) != (lb.order, lb.groups):
        (na, xa, la), (nb, xb, lb) = (im.canonical(node, node.input[i]) for i in (0, 1))
    if (la.order, la.groups) != (lb.order, lb.groups):
        (na, xa), (nb, xb) = im.activation(node, 0), im.activation(node, 1)
        la = Layout.identity(xa.ndim)
    return (na, xa, la), (nb, xb)


def _gate_second(im: Importer, first: str, second: str) -> tuple[str, str]:
    """Mul's factors ordered (signal, gate): the gate is the output of a Sigmoid or Hardsigmoid
    (a squeeze-and-excitation gate), so that ProductRule's default (gate=1) finds it."""
    gates = (L.Sigmoid, L.Hardsigmoid)
    first_layer = im.nodes.get(first, (None,))[0]
    second_layer = im.nodes.get(second, (None,))[0]
    if isinstance(first_layer, gates) and not isinstance(second_layer, gates):
        return second, first
    return first, second


def _mul_or_div(im: Importer, node: Any) -> list[int] | None:
    divide = node.op_type == "Div"
    a, b = node.input[0], node.input[1]
    if im.is_constant(a) or im.is_constant(b):
        if divide and im.is_constant(a):
            im.fail(node, "a constant divided by an activation is not supported")
        value, constant = (b, im.constants[a]) if im.is_constant(a) else (a, im.constants[b])
        if divide:
            constant = 1 / constant
        activation, _, layout = im.view(node, list(node.input).index(value))
        name = im.graph_constant(b if im.is_constant(b) else a,
                                 im.per_sample(node, constant, value))  # fmt: skip
        im.add(node, L.Mul(), [activation, name], layout=layout)
        return None
    if divide:
        im.fail(node, "the quotient of two activations is not supported")
    (na, _, layout), (nb, _) = _alike(im, node)
    im.add(node, L.Mul(), list(_gate_second(im, na, nb)), layout=layout)
    return None


def _single(factory: Callable[[Importer, Any, np.ndarray], Module]) -> Callable:
    """A layer of one input with the batch alone on axis 0."""

    def handler(im: Importer, node: Any) -> None:
        value, x = im.activation(node, 0)
        im.add(node, factory(im, node, x), [value])

    return handler


def _elementwise(factory: Callable[[Importer, Any, np.ndarray], Module]) -> Callable:
    """An element-wise layer: on its input as it is held."""

    def handler(im: Importer, node: Any) -> None:
        value, x, layout = im.view(node, 0)
        im.add(node, factory(im, node, x), [value], layout=layout)

    return handler


def _sigmoid(im: Importer, node: Any) -> list[int] | None:
    """``Sigmoid``, or with the ``Mul`` that reads it and its input ``x * sigmoid(x)``: ``SiLU``."""
    value, _, layout = im.view(node, 0)
    readers = im.consumers.get(node.output[0], [])
    if (
        len(readers) == 1
        and readers[0].op_type == "Mul"
        and set(readers[0].input) == {node.input[0], node.output[0]}
    ):
        im.add(readers[0], L.SiLU(), [value], hint=node.name, layout=layout)
        return [id(readers[0])]
    im.add(node, L.Sigmoid(), [value], layout=layout)
    return None


def _erf(im: Importer, node: Any) -> list[int] | None:
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
            im.add(second, L.GELU(), [im.activations[x][0]], hint=node.name,
                   layout=im.layout(x))  # fmt: skip
            return [id(add), id(first), id(second)]
    im.fail(node, "Erf outside torch's pattern of GELU (x * 0.5 * (1 + erf(x / sqrt 2))) is "
                  "not supported")  # fmt: skip


def _clip(im: Importer, node: Any, x: np.ndarray) -> Module:
    attrs = attributes(node)
    low = im.constant(node, 1, attrs.get("min"))
    high = im.constant(node, 2, attrs.get("max"))
    low = -math.inf if low is None else float(low)
    high = math.inf if high is None else float(high)
    if low == 0 and high == 6:
        return L.ReLU6()
    if low == 0 and high == math.inf:
        return L.ReLU()
    return L.Hardtanh(low, high)


def _hardsigmoid(im: Importer, node: Any, x: np.ndarray) -> Module:
    attrs = attributes(node)
    if not (math.isclose(attrs.get("alpha", 0.2), 1 / 6, rel_tol=1e-6)
            and attrs.get("beta", 0.5) == 0.5):  # fmt: skip
        im.fail(node, f"HardSigmoid with alpha={attrs.get('alpha', 0.2)}, beta="
                      f"{attrs.get('beta', 0.5)}; npxai's Hardsigmoid is torch's (1/6, 0.5)")  # fmt: skip
    return L.Hardsigmoid()


def _pool(im: Importer, node: Any) -> None:
    value, x = im.activation(node, 0)
    attrs = attributes(node)
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


def _only_reader(im: Importer, value: str, op: str) -> Any | None:
    readers = im.consumers.get(value, [])
    return readers[0] if len(readers) == 1 and readers[0].op_type == op else None


def _constant_input(im: Importer, node: Any, value: str) -> np.ndarray | None:
    """The constant that ``node`` reads beside ``value``, if it reads one."""
    others = [v for v in node.input if v != value]
    return im.constants.get(others[0]) if len(others) == 1 else None


def _layer_norm_pattern(im: Importer, node: Any, x: np.ndarray, axes: list[int]) -> list | None:
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
    if axes_of(im, mean2, 1) is None or sorted(a % x.ndim for a in axes_of(im, mean2, 1)) != axes:
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


def _reduce_mean(im: Importer, node: Any) -> list | None:
    value, x = im.activation(node, 0)
    axes = axes_of(im, node, 1)
    keep = bool(attributes(node).get("keepdims", 1))
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


def _reshape_like(im: Importer, node: Any, shape: tuple[int, ...],
                  batch_dim: int | None = None) -> None:  # fmt: skip
    """The node's input reshaped to ``shape`` (for the example's batch): ``Flatten`` or
    ``Reshape`` where the input and ``shape`` have the batch alone on axis 0; else the result is
    held in the input's npxai value, split where ``shape`` splits its axes (``Reshape``;
    :func:`~npxai.onnx.layout.regroup`). ``batch_dim``: the axis of ``shape`` that holds the
    batch, where the importer knows it."""
    value = node.input[0]
    name, x, layout = im.view(node, 0)
    before = im.shape(value)
    if math.prod(shape) != math.prod(before):
        im.fail(node, f"reshaping {before} to {shape}: not as many values")
    if layout.is_identity and shape and shape[0] == x.shape[0] and batch_dim in (None, 0):
        if len(shape) == 2 and x.ndim > 2:
            im.add(node, L.Flatten(1), [name])
        else:
            im.add(node, L.Reshape(tuple(shape[1:])), [name])
        return
    try:
        split, result = regroup(layout, x.shape, tuple(shape), batch_dim, im.free_batch)
    except ValueError as error:
        im.fail(node, f"reshaping {before} to {shape}: {error}")
    result = _moved(im, node, (layout, x.shape), (result, split),
                    f"reshaping {before} to {shape} mixes the batch axis 0")  # fmt: skip
    if split != x.shape:
        im.add(node, L.Reshape(split[1:]), [name], layout=result)
    else:
        im.activations[node.output[0]] = (name, x)
        im.set_layout(node.output[0], result)


def _moved(im: Importer, node: Any, before: tuple[Layout, tuple], after: tuple[Layout, tuple],
           message: str) -> Layout:  # fmt: skip
    """The result's layout, naming ``node`` with ``message`` where it takes the batch off axis 0
    (or merges it there), keeping the name of the node that did where its input was so."""
    layout = after[0]
    if layout.batch_first(after[1]):
        return replace(layout, mixed=None)
    if before[0].batch_first(before[1]):
        return replace(layout, mixed=f"{im.where}: node {node.name!r} ({node.op_type}): {message}")
    return layout


def _resolved(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...] | None:
    """``target`` with its ``-1`` inferred for an input of ``shape``; ``None`` where it does not
    fit."""
    known = math.prod(n for n in target if n != -1)
    size = math.prod(shape)
    if target.count(-1) > 1 or any(n < -1 for n in target):
        return None
    if -1 in target:
        if known == 0 or size % known:
            return None
        target = tuple(size // known if n == -1 else n for n in target)
    return target if math.prod(target) == size else None


def _reshape_batch_dim(im: Importer, node: Any, shape: tuple[int, ...]) -> int | None:
    """The axis of a ``Reshape``'s target that holds the batch: where the file's batch is free,
    the one axis that grows with it (the target's shadow for a batch of 2, :attr:`Importer.
    shadows`); ``None`` where the target does not say."""
    if not im.dynamic_batch:
        return None
    before = im.shape(node.input[0], batch=2)
    target = im.shadows.get(node.input[1], im.constants[node.input[1]])
    shadow = _resolved(before, target_shape(before, target, attributes(node)))
    if shadow is None or len(shadow) != len(shape):
        return None
    grown = [j for j, (n, m) in enumerate(zip(shape, shadow, strict=True)) if n != m]
    if len(grown) == 1 and shadow[grown[0]] == 2 * shape[grown[0]]:
        return grown[0]
    if grown:
        im.fail(node, f"the target {shape} is {shadow} for twice the batch: the batch is not in "
                      "one of its axes")  # fmt: skip
    return None


def _reshape(im: Importer, node: Any) -> list | None:
    """``Reshape`` to a per-sample shape; or, flattened over the batch and read back by one
    ``Gather`` along axis 0 that takes each sample's values in order (how the dynamo exporter
    writes ``as_strided`` on a contiguous tensor, in ConvNeXt's head), the reshape that pair is;
    or, where the target moves or merges the batch (an attention's heads), a new layout."""
    value, x, layout = im.view(node, 0)
    before = im.shape(node.input[0])
    target = target_shape(before, im.constant(node, 1), attributes(node))
    shape = _resolved(before, target)
    if shape is None:
        im.fail(node, f"the target {target} does not fit the input {before}")
    gather = _only_reader(im, node.output[0], "Gather")
    if (len(shape) == 1 and gather is not None and gather.input[0] == node.output[0]
            and layout.is_identity):  # fmt: skip
        indices = im.constants.get(gather.input[1])
        axis = attributes(gather).get("axis", 0)
        size = x.size // x.shape[0]
        if (axis == 0 and indices is not None and indices.ndim > 1
                and indices.shape[0] == x.shape[0] and indices.size == x.size
                and np.array_equal(indices.reshape(x.shape[0], -1),
                                   np.arange(x.size).reshape(x.shape[0], size))):  # fmt: skip
            im.add(gather, L.Reshape(indices.shape[1:]), [value], output=gather.output[0])
            return [id(gather)]
    _reshape_like(im, node, shape, _reshape_batch_dim(im, node, shape))
    return None


def _flatten(im: Importer, node: Any) -> None:
    batch, before = im.view(node, 0)[2].batch_axis(), im.shape(node.input[0])
    axis = attributes(node).get("axis", 1) % max(len(before), 1)
    if axis == 0:
        im.fail(node, "Flatten with axis=0 mixes the batch axis")
    _reshape_like(im, node, (math.prod(before[:axis]), math.prod(before[axis:])),
                  None if batch is None else int(batch >= axis))  # fmt: skip


def _squeeze(im: Importer, node: Any) -> None:
    batch, before = im.view(node, 0)[2].batch_axis(), im.shape(node.input[0])
    axes = axes_of(im, node, 1)
    if axes is None:
        squeezed = [j for j, n in enumerate(before) if n == 1 and j != batch]
    else:
        squeezed = sorted(a % len(before) for a in axes)
    if batch in squeezed or any(before[j] != 1 for j in squeezed):
        im.fail(node, f"squeezing the axes {squeezed} of {before}: only axes of size 1 other than "
                      f"the batch's ({batch})")  # fmt: skip
    kept = [j for j in range(len(before)) if j not in squeezed]
    _reshape_like(im, node, tuple(before[j] for j in kept),
                  None if batch is None else kept.index(batch))  # fmt: skip


def _unsqueeze(im: Importer, node: Any) -> None:
    batch, before = im.view(node, 0)[2].batch_axis(), im.shape(node.input[0])
    axes = axes_of(im, node, 1)
    shape = list(before)
    inserted = sorted(a % (len(before) + len(axes)) for a in axes)
    for a in inserted:
        shape.insert(a, 1)
    kept = [j for j in range(len(shape)) if j not in inserted]
    _reshape_like(im, node, tuple(shape), None if batch is None else kept[batch])


def _concat(im: Importer, node: Any) -> None:
    """``Concat`` of activations with the batch alone on axis 0, along another axis; a constant
    among them (a ViT's class token, expanded along the batch) is a graph constant that
    :class:`~npxai.layers.Concat` repeats along the batch."""
    first = next(i for i, v in enumerate(node.input) if v in im.activations)
    if len(node.input) == 1:
        return im.alias(node)  # torch.cat of one tensor
    x = im.activation(node, first)[1]
    axis = attributes(node)["axis"] % x.ndim
    if axis == 0:
        im.fail(node, "concatenation along the batch axis 0")
    values = []
    for i, value in enumerate(node.input):
        if value in im.activations:
            values.append(im.activation(node, i)[0])
        else:
            constant = im.per_sample(node, im.constants[value], node.input[first])
            values.append(im.graph_constant(value, constant))
    im.add(node, L.Concat(axis), values)


def _batch_norm(im: Importer, node: Any, x: np.ndarray) -> Module:
    attrs = attributes(node)
    if attrs.get("training_mode", 0):
        im.fail(node, "training_mode=1")
    scale, bias, mean, var = (im.constant(node, i) for i in range(1, 5))
    cls = L.BatchNorm2d if x.ndim == 4 else L.BatchNorm1d
    norm = cls(len(scale), attrs.get("epsilon", 1e-5))
    norm.weight, norm.bias, norm.running_mean, norm.running_var = scale, bias, mean, var
    return norm


def _layer_norm(im: Importer, node: Any) -> None:
    value, x = im.activation(node, 0)
    attrs = attributes(node)
    axis = attrs.get("axis", -1) % x.ndim
    if axis == 0:
        im.fail(node, "a LayerNormalization over the batch axis")
    scale, bias = im.constant(node, 1), im.constant(node, 2)
    norm = L.LayerNorm(x.shape[axis:], attrs.get("epsilon", 1e-5), True, bias is not None)
    norm.weight = np.broadcast_to(scale, x.shape[axis:]).copy()
    if bias is not None:
        norm.bias = np.broadcast_to(bias, x.shape[axis:]).copy()
    im.add(node, norm, [value])


def _axis(im: Importer, node: Any, axis: int, what: str) -> tuple[str, np.ndarray, Layout, int]:
    """The node's input held with its axis ``axis`` one axis of the npxai value (not the
    batch's): ``(value, example, layout, that axis)``; ``what`` names the op in the error."""
    name, x, layout = im.view(node, 0)
    if 0 in layout.members()[axis]:
        im.fail(node, f"{what} the batch axis" + (" 0" if axis == 0 else f" (axis {axis})"))
    if len(layout.members()[axis]) != 1:
        name, x, layout = im.canonical(node, node.input[0])
    return name, x, layout, layout.members()[axis][0]


def _softmax(im: Importer, node: Any) -> None:
    ndim = len(im.view(node, 0)[2].groups)
    axis = attributes(node).get("axis", -1 if im.opset >= 13 else 1) % ndim
    if im.opset < 13 and axis != ndim - 1:
        im.fail(node, f"Softmax of opset {im.opset} (over the flattened axes {axis}..) "
                      "on more than the last axis")  # fmt: skip
    name, _, layout, dim = _axis(im, node, axis, "a softmax over")
    im.add(node, L.Softmax(dim), [name], layout=layout)


def _transpose(im: Importer, node: Any) -> None:
    """``Permute`` where the batch stays first; else a new layout of the npxai value (an
    attention's ``(N, S, E) -> (S, N, E)``), no node."""
    name, x, layout = im.view(node, 0)
    ndim = len(layout.groups)
    perm = [int(p) % ndim for p in attributes(node).get("perm", range(ndim - 1, -1, -1))]
    if layout.is_identity and perm[0] == 0:
        im.add(node, L.Permute(perm), [name])
        return
    result = _moved(im, node, (layout, x.shape), (layout.transpose(perm), x.shape),
                    f"perm {perm} moves the batch axis 0")  # fmt: skip
    im.activations[node.output[0]] = (name, x)
    im.set_layout(node.output[0], result)


def _pad(im: Importer, node: Any, x: np.ndarray) -> Module:
    """``Pad`` (constant mode) of the last two axes of ``(N, C, H, W)``: ``ConstantPad2d``."""
    attrs = attributes(node)
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


def _resize(im: Importer, node: Any, x: np.ndarray) -> Module:
    """``Resize`` of the last two axes of ``(N, C, H, W)``: ``Upsample``, nearest as torch exports
    it (``asymmetric``, ``floor``) or bilinear (``half_pixel``/``pytorch_half_pixel``:
    ``align_corners=False``; ``align_corners``: ``True``)."""
    attrs = attributes(node)
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


def _shape(im: Importer, node: Any) -> None:
    """``Shape`` of an activation: a constant, its example's shape (the batch axis as in the
    example: 1, or the file's fixed batch), with its shadow for a batch of 2 where the file's
    batch is free (:attr:`Importer.shadows`)."""
    im.view(node, 0)  # an activation
    attrs = attributes(node)
    shape = im.shape(node.input[0])
    cut = slice(attrs.get("start", 0), attrs.get("end", len(shape)))
    im.constants[node.output[0]] = np.array(shape[cut], np.int64)
    shadow = np.array(im.shape(node.input[0], batch=2)[cut], np.int64)
    if im.dynamic_batch and not np.array_equal(shadow, im.constants[node.output[0]]):
        im.shadows[node.output[0]] = shadow


def _gather(im: Importer, node: Any) -> None:
    """``Gather`` of an activation along a non-batch axis by constant indices: one index is
    ``Select``, evenly spaced increasing indices are a ``Slice``."""
    indices = im.constant(node, 1)
    im.view(node, 0)  # an activation
    shape = im.shape(node.input[0])
    axis = attributes(node).get("axis", 0) % len(shape)
    value, _, layout, dim = _axis(im, node, axis, "a gather along")
    flat = np.asarray(indices).reshape(-1) % shape[axis]
    if indices.ndim == 0:
        order = tuple(a - (a > dim) for a in layout.order if a != dim)
        groups = tuple(n for j, n in enumerate(layout.groups) if j != axis)
        im.add(node, L.Select(dim, int(flat[0])), [value],
               layout=replace(layout, order=order, groups=groups))  # fmt: skip
        return
    step = int(flat[1] - flat[0]) if len(flat) > 1 else 1
    if (
        indices.ndim != 1
        or step < 1
        or not np.array_equal(flat, flat[0] + step * np.arange(len(flat)))
    ):
        im.fail(node, f"a gather of the indices {indices.tolist()[:8]}: npxai takes one index "
                      "(Select) or evenly spaced increasing ones (Slice)")  # fmt: skip
    im.add(node, L.Slice(dim, int(flat[0]), int(flat[-1]) + 1, step), [value], layout=layout)


def _slice(im: Importer, node: Any) -> None:
    """``Slice`` of an activation by constant starts, ends, axes and steps: one ``Slice`` layer
    per axis (the batch axis only where it is kept whole)."""
    im.view(node, 0)  # an activation
    shape = im.shape(node.input[0])
    starts, ends = im.constant(node, 1), im.constant(node, 2)
    axes = im.constant(node, 3, np.arange(len(starts)))
    steps = im.constant(node, 4, np.ones(len(starts), np.int64))
    cuts = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = int(axis) % len(shape)
        kept = range(shape[axis])[int(start) : int(end) : int(step)]
        if int(step) < 1:
            im.fail(node, f"step {int(step)}: only increasing slices are supported")
        if len(kept) != shape[axis]:  # else the whole axis
            cuts.append((axis, kept))
    if not cuts:
        im.alias(node)
        return
    for axis, _ in cuts:
        value, _, layout, _ = _axis(im, node, axis, "a slice of")
    for i, (axis, kept) in enumerate(cuts):
        cut = L.Slice(layout.members()[axis][0], kept.start, kept.stop, kept.step)
        output = None if i == len(cuts) - 1 else f"{node.output[0]}/{i}"
        value = im.add(node, cut, [value], output=output, layout=layout)


def _identity(im: Importer, node: Any) -> None:
    im.alias(node)


def _cast(im: Importer, node: Any) -> None:
    to = attributes(node)["to"]
    x = im.view(node, 0)[1]
    if DTYPES.get(to) is not x.dtype.type:
        im.fail(node, f"a cast of a {x.dtype} activation to data type {to}")
    im.alias(node)


def _expand(im: Importer, node: Any) -> None:
    """``Expand`` of an activation to its own shape (an exporter's no-op); a constant's
    expansion (a class token along the batch) is folded."""
    im.view(node, 0)  # an activation
    shape, target = im.shape(node.input[0]), tuple(int(n) for n in im.constant(node, 1))
    try:
        grows = np.broadcast_shapes(shape, target) != shape
    except ValueError:
        grows = True
    if grows:
        im.fail(node, f"expanding an activation of shape {shape} by {target} is not supported "
                      "(only a constant's expansion, which is folded)")  # fmt: skip
    im.alias(node)


def _gelu(im: Importer, node: Any, x: np.ndarray) -> Module:
    return L.GELU(attributes(node).get("approximate", "none"))


def _leaky(im: Importer, node: Any, x: np.ndarray) -> Module:
    return L.LeakyReLU(attributes(node).get("alpha", 0.01))


def _global_average(im: Importer, node: Any, x: np.ndarray) -> Module:
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
    "Relu": _elementwise(lambda im, node, x: L.ReLU()),
    "Sigmoid": _sigmoid,
    "Tanh": _elementwise(lambda im, node, x: L.Tanh()),
    "LeakyRelu": _elementwise(_leaky),
    "HardSigmoid": _elementwise(_hardsigmoid),
    "HardSwish": _elementwise(lambda im, node, x: L.Hardswish()),
    "Gelu": _elementwise(_gelu),
    "Erf": _erf,
    "Clip": _elementwise(_clip),
    "Softmax": _softmax,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _single(_global_average),
    "ReduceMean": _reduce_mean,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "Concat": _concat,
    "BatchNormalization": _single(_batch_norm),
    "LayerNormalization": _layer_norm,
    "Pad": _single(_pad),
    "Resize": _single(_resize),
    "Shape": _shape,
    "Gather": _gather,
    "Slice": _slice,
    "Dropout": _identity,
    "Identity": _identity,
    "Cast": _cast,
    "Expand": _expand,
}
