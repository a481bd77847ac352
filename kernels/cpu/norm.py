"""Batch normalisation (evaluation mode), compiled. Same functions as ``npxai.reference.norm``."""

import numpy as np
from numba import njit, prange

from npxai.reference.norm import batch_norm_scale


@njit(parallel=True, cache=True)
def _batch_norm(x, mean, scale, shift, y):
    # x, y: (N, C, S); y = (x - mean_c) * scale_c + shift_c
    n, c, s = x.shape
    for plane in prange(n * c):
        i, ch = plane // c, plane % c
        for k in range(s):
            y[i, ch, k] = (x[i, ch, k] - mean[ch]) * scale[ch] + shift[ch]


@njit(parallel=True, cache=True)
def _scale_channels(g, scale, out):
    n, c, s = g.shape
    for plane in prange(n * c):
        i, ch = plane // c, plane % c
        for k in range(s):
            out[i, ch, k] = g[i, ch, k] * scale[ch]


def _planes(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


def batch_norm(
    x: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
) -> np.ndarray:
    scale = batch_norm_scale(running_var, weight, eps).astype(x.dtype)
    shift = np.zeros_like(scale) if bias is None else bias.astype(x.dtype)
    planes = _planes(x)
    y = np.empty_like(planes)
    _batch_norm(planes, running_mean.astype(x.dtype), scale, shift, y)
    return y.reshape(x.shape)


def batch_norm_vjp(
    grad_y: np.ndarray, running_var: np.ndarray, weight: np.ndarray | None, eps: float
) -> np.ndarray:
    scale = batch_norm_scale(running_var, weight, eps).astype(grad_y.dtype)
    planes = _planes(grad_y)
    out = np.empty_like(planes)
    _scale_channels(planes, scale, out)
    return out.reshape(grad_y.shape)
