"""Batch normalisation (evaluation mode) on the device. Same functions as ``npxai.kernels.cpu.norm``
(and ``npxai.reference.norm``).

A per-channel kernel folds the running variance and the affine weight into
``scale_c = gamma_c / sqrt(var_c + eps)``; the element kernel then computes
``(x - mean_c) * scale_c + beta_c`` as the reference does, one thread per element. The per-channel
vectors are device arrays like ``x``; ``x`` is viewed as ``(N, C, S)`` and must be C-contiguous.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from numba import cuda

from . import as_device, grid_1d

if TYPE_CHECKING:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as DeviceArray


@cuda.jit
def _scale(var, weight, eps, has_weight, scale):
    # scale_c = (gamma_c if has_weight else 1) / sqrt(var_c + eps)
    c = cuda.grid(1)
    if c < scale.size:
        s = 1 / math.sqrt(var[c] + eps)
        scale[c] = weight[c] * s if has_weight else s


@cuda.jit
def _batch_norm(x, mean, scale, bias, has_bias, y):
    # x, y: (N, C, S); y = (x - mean_c) * scale_c + beta_c
    t = cuda.grid(1)
    if t < y.size:
        s = x.shape[2]
        k = t % s
        ch = (t // s) % x.shape[1]
        i = t // (s * x.shape[1])
        v = (x[i, ch, k] - mean[ch]) * scale[ch]
        y[i, ch, k] = v + bias[ch] if has_bias else v


@cuda.jit
def _scale_channels(g, scale, out):
    t = cuda.grid(1)
    if t < out.size:
        s = g.shape[2]
        k = t % s
        ch = (t // s) % g.shape[1]
        i = t // (s * g.shape[1])
        out[i, ch, k] = g[i, ch, k] * scale[ch]


def _channel_scale(running_var, weight, eps: float, dtype):
    """``gamma_c / sqrt(var_c + eps)`` on the device, in ``dtype``."""
    var = as_device(running_var)
    scale = cuda.device_array(var.shape[0], dtype)
    has_weight = weight is not None
    # without a weight, ``var`` stands in for it (same type, never read)
    weight = as_device(weight) if has_weight else var
    _scale[grid_1d(scale.size)](var, weight, var.dtype.type(eps), has_weight, scale)
    return scale


def _planes(x):
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def batch_norm(
    x: DeviceArray,
    running_mean: DeviceArray,
    running_var: DeviceArray,
    weight: DeviceArray | None,
    bias: DeviceArray | None,
    eps: float,
) -> DeviceArray:
    """``y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c`` over channel axis 1
    (``gamma = 1``, ``beta = 0`` when absent)."""
    x = as_device(x)
    scale = _channel_scale(running_var, weight, eps, x.dtype)
    mean = as_device(running_mean)
    has_bias = bias is not None
    bias = as_device(bias) if has_bias else scale  # a stand-in, never read
    planes = _planes(x)
    y = cuda.device_array(planes.shape, x.dtype)
    _batch_norm[grid_1d(y.size)](planes, mean, scale, bias, has_bias, y)
    return y.reshape(x.shape)


def batch_norm_vjp(
    grad_y: DeviceArray, running_var: DeviceArray, weight: DeviceArray | None, eps: float
) -> DeviceArray:
    """``dL/dx = dL/dy * gamma_c / sqrt(var_c + eps)``."""
    grad_y = as_device(grad_y)
    scale = _channel_scale(running_var, weight, eps, grad_y.dtype)
    planes = _planes(grad_y)
    out = cuda.device_array(planes.shape, grad_y.dtype)
    _scale_channels[grid_1d(out.size)](planes, scale, out)
    return out.reshape(grad_y.shape)


@cuda.jit(device=True)
def _row_statistics(x, a, b, eps):
    """``(mean, 1 / sqrt(var + eps))`` of ``x[a, :, b]`` (two passes: no cancellation)."""
    k = x.shape[1]
    total = 0.0
    for j in range(k):
        total += x[a, j, b]
    mean = total / k
    spread = 0.0
    for j in range(k):
        d = x[a, j, b] - mean
        spread += d * d
    return mean, 1 / math.sqrt(spread / k + eps)


@cuda.jit
def _layer_norm(x, weight, bias, eps, y):
    # x, y: (A, K, B), normalised over K, one thread per row (a, b); weight, bias: (K,)
    row = cuda.grid(1)
    m = x.shape[2]
    if row < x.shape[0] * m:
        a, b = row // m, row % m
        mean, inv_std = _row_statistics(x, a, b, eps)
        for j in range(x.shape[1]):
            y[a, j, b] = (x[a, j, b] - mean) * inv_std * weight[j] + bias[j]


@cuda.jit
def _layer_norm_vjp(g, x, weight, eps, fixed_std, out):
    # out = (gw - mean(gw) - x_hat mean(gw x_hat)) / sigma over K, gw = g * weight
    row = cuda.grid(1)
    k, m = x.shape[1], x.shape[2]
    if row < x.shape[0] * m:
        a, b = row // m, row % m
        mean, inv_std = _row_statistics(x, a, b, eps)
        g_mean = 0.0
        gx_mean = 0.0
        for j in range(k):
            gw = g[a, j, b] * weight[j]
            g_mean += gw
            gx_mean += gw * (x[a, j, b] - mean) * inv_std
        g_mean /= k
        if fixed_std:
            gx_mean = 0.0
        else:
            gx_mean /= k
        for j in range(k):
            x_hat = (x[a, j, b] - mean) * inv_std
            out[a, j, b] = (g[a, j, b] * weight[j] - g_mean - x_hat * gx_mean) * inv_std


def _rows(x, start: int, stop: int):
    """``x`` viewed as ``(A, K, B)``: the axes before, in and after the normalised ones."""
    shape = x.shape
    return x.reshape(
        math.prod(shape[:start]), math.prod(shape[start:stop]), math.prod(shape[stop:])
    )


def _vector(v, k: int, fill: float, dtype):
    """``v`` flat on the device, or ``k`` copies of ``fill`` (an absent weight or bias)."""
    if v is not None:
        return as_device(v).reshape(k)
    filled = cuda.device_array(k, dtype)
    _fill[grid_1d(k)](filled, fill)
    return filled


@cuda.jit
def _fill(out, value):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = value


def layer_norm(
    x: DeviceArray,
    weight: DeviceArray | None,
    bias: DeviceArray | None,
    eps: float,
    start: int,
    stop: int,
) -> DeviceArray:
    """``y = (x - mean) / sqrt(var + eps) * w + b`` over axes ``start .. stop - 1`` (``w = 1``,
    ``b = 0`` when absent)."""
    x = as_device(x)
    rows = _rows(x, start, stop)
    k = rows.shape[1]
    y = cuda.device_array(rows.shape, x.dtype)
    weight, bias = _vector(weight, k, 1.0, x.dtype), _vector(bias, k, 0.0, x.dtype)
    blocks = grid_1d(rows.shape[0] * rows.shape[2])
    _layer_norm[blocks](rows, weight, bias, x.dtype.type(eps), y)
    return y.reshape(x.shape)


def layer_norm_vjp(
    grad_y: DeviceArray,
    x: DeviceArray,
    weight: DeviceArray | None,
    eps: float,
    start: int,
    stop: int,
    fixed_std: bool = False,
) -> DeviceArray:
    """``dL/dx = (g - mean(g) - x_hat mean(g x_hat)) / sigma``, ``g = dL/dy * w``; with
    ``fixed_std=True`` ``(g - mean(g)) / sigma`` (``sigma`` held constant)."""
    x = as_device(x)
    rows = _rows(x, start, stop)
    out = cuda.device_array(rows.shape, x.dtype)
    weight = _vector(weight, rows.shape[1], 1.0, x.dtype)
    blocks = grid_1d(rows.shape[0] * rows.shape[2])
    grads = _rows(as_device(grad_y), start, stop)
    _layer_norm_vjp[blocks](grads, rows, weight, x.dtype.type(eps), bool(fixed_std), out)
    return out.reshape(x.shape)
