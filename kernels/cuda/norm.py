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
