"""Element-wise activations and softmax on the device. Same functions as
``npxai.kernels.cpu.activation`` (and ``npxai.reference.activation``).

The element-wise kernels run one thread per element over the flattened array, so one compiled
version per dtype serves every shape; inputs must therefore be C-contiguous (as
``cuda.to_device``, ``cuda.device_array`` and every kernel here produce them). Softmax views the
array as ``(outer, dim, inner)`` and runs one thread per row along ``dim``: no transpose.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from numba import cuda

from ...reference.activation import GELU_BETA, GELU_KAPPA
from . import as_device, grid_1d

if TYPE_CHECKING:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as DeviceArray


@cuda.jit
def _relu(x, y):
    i = cuda.grid(1)
    if i < y.size:
        y[i] = 0 if x[i] <= 0 else x[i]  # NaN stays NaN


@cuda.jit
def _relu_vjp(g, x, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = 0 if x[i] <= 0 else g[i]  # NaN passes the gradient, as in torch


@cuda.jit
def _relu6(x, y):
    i = cuda.grid(1)
    if i < y.size:
        v = x[i]  # no min/max: numba 0.66+ cannot compile the two-argument builtins for CUDA
        y[i] = 0 if v < 0 else (6 if v > 6 else v)


@cuda.jit
def _relu6_vjp(g, x, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = g[i] if 0 < x[i] < 6 else 0


@cuda.jit
def _hardtanh(x, low, high, y):
    i = cuda.grid(1)
    if i < y.size:
        v = x[i]
        y[i] = low if v < low else (high if v > high else v)  # NaN stays NaN


@cuda.jit
def _hardtanh_vjp(g, x, low, high, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = g[i] if low < x[i] < high else 0


@cuda.jit
def _leaky_relu(x, slope, y):
    i = cuda.grid(1)
    if i < y.size:
        y[i] = x[i] if x[i] > 0 else x[i] * slope


@cuda.jit
def _leaky_relu_vjp(g, x, slope, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = g[i] if x[i] > 0 else g[i] * slope


@cuda.jit
def _tanh(x, y):
    i = cuda.grid(1)
    if i < y.size:
        y[i] = math.tanh(x[i])


@cuda.jit
def _tanh_vjp(g, y, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = g[i] * (1 - y[i] * y[i])


@cuda.jit
def _sigmoid(x, y):
    i = cuda.grid(1)
    if i < y.size:
        e = math.exp(-abs(x[i]))
        y[i] = 1 / (1 + e) if x[i] >= 0 else e / (1 + e)


@cuda.jit
def _sigmoid_vjp(g, y, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = g[i] * y[i] * (1 - y[i])


@cuda.jit
def _silu(x, y):
    i = cuda.grid(1)
    if i < y.size:
        v = x[i]
        e = math.exp(-abs(v))
        y[i] = v * (1 / (1 + e) if v >= 0 else e / (1 + e))


@cuda.jit
def _silu_vjp(g, x, out):
    i = cuda.grid(1)
    if i < out.size:
        v = x[i]
        e = math.exp(-abs(v))
        s = 1 / (1 + e) if v >= 0 else e / (1 + e)
        out[i] = g[i] * s * (1 + v * (1 - s))


@cuda.jit
def _hardsigmoid(x, y):
    i = cuda.grid(1)
    if i < y.size:
        v = x[i] + 3
        y[i] = (0 if v < 0 else (6 if v > 6 else v)) / 6  # NaN stays NaN


@cuda.jit
def _hardsigmoid_vjp(g, x, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = g[i] / 6 if -3 < x[i] < 3 else 0


@cuda.jit
def _hardswish(x, y):
    i = cuda.grid(1)
    if i < y.size:
        v = x[i] + 3
        y[i] = x[i] * (0 if v < 0 else (6 if v > 6 else v)) / 6


@cuda.jit
def _hardswish_vjp(g, x, half, out):
    i = cuda.grid(1)
    if i < out.size:
        v = x[i]
        out[i] = 0 if v < -3 else (g[i] if v > 3 else g[i] * (v / 3 + half))  # NaN: NaN


@cuda.jit
def _gelu(x, tanh_form, half, beta, kappa, root_half, y):
    i = cuda.grid(1)
    if i < y.size:
        v = x[i]
        if tanh_form:
            u = 2 * beta * (v + kappa * v * v * v)
            e = math.exp(-abs(u))
            y[i] = v * (1 / (1 + e) if u >= 0 else e / (1 + e))  # x sigmoid(2u)
        else:
            y[i] = v * (half * math.erfc(-v * root_half))


@cuda.jit
def _gelu_vjp(g, x, tanh_form, half, beta, kappa, root_half, inv_root_2pi, out):
    i = cuda.grid(1)
    if i < out.size:
        v = x[i]
        if tanh_form:
            u = 2 * beta * (v + kappa * v * v * v)
            e = math.exp(-abs(u))
            s = 1 / (1 + e) if u >= 0 else e / (1 + e)
            out[i] = g[i] * (s + 2 * v * s * (1 - s) * beta * (1 + 3 * kappa * v * v))
        else:
            cdf = half * math.erfc(-v * root_half)
            out[i] = g[i] * (cdf + v * (math.exp(-half * v * v) * inv_root_2pi))


@cuda.jit
def _softmax_rows(x, y):
    # x, y: (outer, d, inner); one thread per row (o, :, i)
    r = cuda.grid(1)
    inner = x.shape[2]
    if r < x.shape[0] * inner:
        o, i = r // inner, r % inner
        top = x[o, 0, i]
        for k in range(1, x.shape[1]):
            v = x[o, k, i]
            top = v if v > top else top
        for k in range(x.shape[1]):
            y[o, k, i] = math.exp(x[o, k, i] - top)
        total = y[o, 0, i]  # accumulate in the array's dtype, as the reference does
        for k in range(1, x.shape[1]):
            total += y[o, k, i]
        for k in range(x.shape[1]):
            y[o, k, i] /= total


@cuda.jit
def _softmax_vjp_rows(g, y, out):
    r = cuda.grid(1)
    inner = y.shape[2]
    if r < y.shape[0] * inner:
        o, i = r // inner, r % inner
        dot = g[o, 0, i] * y[o, 0, i]
        for k in range(1, y.shape[1]):
            dot += g[o, k, i] * y[o, k, i]
        for k in range(y.shape[1]):
            out[o, k, i] = y[o, k, i] * (g[o, k, i] - dot)


def _elementwise(kernel, arrays, *scalars):
    """``kernel(*flat arrays, *scalars, out)``; ``out`` has the first array's shape and dtype."""
    arrays = [as_device(a) for a in arrays]
    n = arrays[0].size
    out = cuda.device_array(n, arrays[0].dtype)
    kernel[grid_1d(n)](*[a.reshape(n) for a in arrays], *scalars, out)
    return out.reshape(arrays[0].shape)


def relu(x: DeviceArray) -> DeviceArray:
    """``y = max(x, 0)`` (``x > 0 ? x : 0``)."""
    return _elementwise(_relu, [x])


def relu_vjp(grad_y: DeviceArray, x: DeviceArray) -> DeviceArray:
    """``dL/dx = dL/dy * [x > 0]``."""
    return _elementwise(_relu_vjp, [grad_y, x])


def relu6(x: DeviceArray) -> DeviceArray:
    """``y = min(max(x, 0), 6)``."""
    return _elementwise(_relu6, [x])


def relu6_vjp(grad_y: DeviceArray, x: DeviceArray) -> DeviceArray:
    """``dL/dx = dL/dy * [0 < x < 6]``."""
    return _elementwise(_relu6_vjp, [grad_y, x])


def hardtanh(x: DeviceArray, min_val: float, max_val: float) -> DeviceArray:
    """``y = min(max(x, min_val), max_val)``, the bounds in the input's dtype."""
    x = as_device(x)
    return _elementwise(_hardtanh, [x], x.dtype.type(min_val), x.dtype.type(max_val))


def hardtanh_vjp(
    grad_y: DeviceArray, x: DeviceArray, min_val: float, max_val: float
) -> DeviceArray:
    """``dL/dx = dL/dy * [min_val < x < max_val]`` (0 at the bounds, as torch)."""
    x = as_device(x)
    low, high = x.dtype.type(min_val), x.dtype.type(max_val)
    return _elementwise(_hardtanh_vjp, [grad_y, x], low, high)


def leaky_relu(x: DeviceArray, negative_slope: float) -> DeviceArray:
    """``y = x`` where ``x > 0``, else ``negative_slope * x``."""
    x = as_device(x)
    return _elementwise(_leaky_relu, [x], x.dtype.type(negative_slope))


def leaky_relu_vjp(grad_y: DeviceArray, x: DeviceArray, negative_slope: float) -> DeviceArray:
    """``dL/dx = dL/dy`` where ``x > 0``, else ``negative_slope * dL/dy``."""
    grad_y = as_device(grad_y)
    return _elementwise(_leaky_relu_vjp, [grad_y, x], grad_y.dtype.type(negative_slope))


def tanh(x: DeviceArray) -> DeviceArray:
    """``y = tanh(x)``."""
    return _elementwise(_tanh, [x])


def tanh_vjp(grad_y: DeviceArray, y: DeviceArray) -> DeviceArray:
    """``dL/dx = dL/dy * (1 - y^2)``."""
    return _elementwise(_tanh_vjp, [grad_y, y])


def sigmoid(x: DeviceArray) -> DeviceArray:
    """``y = 1 / (1 + exp(-x))``, as ``1 / (1 + e)`` or ``e / (1 + e)`` with ``e = exp(-|x|)``
    (no overflow for large ``|x|``)."""
    return _elementwise(_sigmoid, [x])


def sigmoid_vjp(grad_y: DeviceArray, y: DeviceArray) -> DeviceArray:
    """``dL/dx = dL/dy * y * (1 - y)``."""
    return _elementwise(_sigmoid_vjp, [grad_y, y])


def silu(x: DeviceArray) -> DeviceArray:
    """``y = x sigmoid(x)``."""
    return _elementwise(_silu, [x])


def silu_vjp(grad_y: DeviceArray, x: DeviceArray) -> DeviceArray:
    """``dL/dx = dL/dy * s (1 + x (1 - s))``, ``s = sigmoid(x)``."""
    return _elementwise(_silu_vjp, [grad_y, x])


def hardsigmoid(x: DeviceArray) -> DeviceArray:
    """``y = min(max(x + 3, 0), 6) / 6``."""
    return _elementwise(_hardsigmoid, [x])


def hardsigmoid_vjp(grad_y: DeviceArray, x: DeviceArray) -> DeviceArray:
    """``dL/dx = dL/dy / 6`` where ``-3 < x < 3``, else 0."""
    return _elementwise(_hardsigmoid_vjp, [grad_y, x])


def hardswish(x: DeviceArray) -> DeviceArray:
    """``y = x min(max(x + 3, 0), 6) / 6``."""
    return _elementwise(_hardswish, [x])


def hardswish_vjp(grad_y: DeviceArray, x: DeviceArray) -> DeviceArray:
    """``dL/dx = 0`` below -3, ``dL/dy (x / 3 + 1/2)`` up to 3 (NaN at a NaN), ``dL/dy`` above."""
    grad_y = as_device(grad_y)
    return _elementwise(_hardswish_vjp, [grad_y, x], grad_y.dtype.type(0.5))


def _gelu_constants(dtype) -> tuple:
    t = dtype.type
    return t(0.5), t(GELU_BETA), t(GELU_KAPPA), t(math.sqrt(0.5))


def gelu(x: DeviceArray, approximate: str) -> DeviceArray:
    """``y = x Phi(x)``, or its tanh form (``approximate="tanh"``)."""
    x = as_device(x)
    return _elementwise(_gelu, [x], approximate == "tanh", *_gelu_constants(x.dtype))


def gelu_vjp(grad_y: DeviceArray, x: DeviceArray, approximate: str) -> DeviceArray:
    """``dL/dx = dL/dy (Phi(x) + x phi(x))``, or the tanh form's derivative."""
    grad_y = as_device(grad_y)
    constants = (*_gelu_constants(grad_y.dtype), grad_y.dtype.type(1 / math.sqrt(2 * math.pi)))
    return _elementwise(_gelu_vjp, [grad_y, x], approximate == "tanh", *constants)


def _rows(x, dim: int):
    """``x`` viewed as ``(outer, x.shape[dim], inner)`` (C-contiguous ``x``: no copy)."""
    dim = dim % x.ndim
    outer = math.prod(x.shape[:dim])
    inner = math.prod(x.shape[dim + 1 :])
    return x.reshape(outer, x.shape[dim], inner)


def softmax(x: DeviceArray, dim: int) -> DeviceArray:
    """``y_i = exp(x_i - max x) / sum_k exp(x_k - max x)`` along ``dim``."""
    x = as_device(x)
    rows = _rows(x, dim)
    out = cuda.device_array(rows.shape, x.dtype)
    _softmax_rows[grid_1d(rows.shape[0] * rows.shape[2])](rows, out)
    return out.reshape(x.shape)


def softmax_vjp(grad_y: DeviceArray, y: DeviceArray, dim: int) -> DeviceArray:
    """``dL/dx_i = y_i * (dL/dy_i - sum_k dL/dy_k * y_k)`` along ``dim``."""
    grad_y, y = as_device(grad_y), as_device(y)
    rows = _rows(y, dim)
    out = cuda.device_array(rows.shape, grad_y.dtype)
    _softmax_vjp_rows[grid_1d(rows.shape[0] * rows.shape[2])](_rows(grad_y, dim), rows, out)
    return out.reshape(y.shape)
