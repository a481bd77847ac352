"""Batch normalisation (evaluation mode), compiled. Same functions as ``npxai.reference.norm``."""

import numpy as np
from numba import njit, prange

from npxai.reference.norm import batch_norm_scale

from .threads import EXP, STREAM, sized


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
    sized(_batch_norm, y.size, STREAM)(planes, running_mean.astype(x.dtype), scale, shift, y)
    return y.reshape(x.shape)


def batch_norm_vjp(
    grad_y: np.ndarray, running_var: np.ndarray, weight: np.ndarray | None, eps: float
) -> np.ndarray:
    scale = batch_norm_scale(running_var, weight, eps).astype(grad_y.dtype)
    planes = _planes(grad_y)
    out = np.empty_like(planes)
    sized(_scale_channels, out.size, STREAM)(planes, scale, out)
    return out.reshape(grad_y.shape)


@njit(cache=True)
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
    return mean, 1 / np.sqrt(spread / k + eps)


@njit(parallel=True, cache=True)
def _layer_norm(x, weight, bias, eps, y):
    # x, y: (A, K, B), normalised over K; weight, bias: (K,)
    n, k, m = x.shape
    for row in prange(n * m):
        a, b = row // m, row % m
        mean, inv_std = _row_statistics(x, a, b, eps)
        for j in range(k):
            y[a, j, b] = (x[a, j, b] - mean) * inv_std * weight[j] + bias[j]


@njit(parallel=True, cache=True)
def _layer_norm_vjp(g, x, weight, eps, fixed_std, out):
    # out = (gw - mean(gw) - x_hat mean(gw x_hat)) / sigma over K, gw = g * weight
    n, k, m = x.shape
    for row in prange(n * m):
        a, b = row // m, row % m
        mean, inv_std = _row_statistics(x, a, b, eps)
        g_mean = 0.0
        gx_mean = 0.0
        for j in range(k):
            gw = g[a, j, b] * weight[j]
            g_mean += gw
            gx_mean += gw * (x[a, j, b] - mean) * inv_std
        g_mean /= k
        gx_mean = 0.0 if fixed_std else gx_mean / k
        for j in range(k):
            x_hat = (x[a, j, b] - mean) * inv_std
            out[a, j, b] = (g[a, j, b] * weight[j] - g_mean - x_hat * gx_mean) * inv_std


def _rows(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``x`` viewed as ``(A, K, B)``: the axes before, in and after the normalised ones."""
    shape = x.shape
    k = int(np.prod(shape[start:stop]))
    return np.ascontiguousarray(x).reshape(int(np.prod(shape[:start])), k, -1)


def _vector(v: np.ndarray | None, k: int, fill: float, dtype) -> np.ndarray:
    return np.full(k, fill, dtype) if v is None else np.ascontiguousarray(v, dtype).reshape(k)


def layer_norm(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
    start: int,
    stop: int,
) -> np.ndarray:
    rows = _rows(x, start, stop)
    k = rows.shape[1]
    y = np.empty_like(rows)
    sized(_layer_norm, y.size, EXP)(
        rows, _vector(weight, k, 1, x.dtype), _vector(bias, k, 0, x.dtype), x.dtype.type(eps), y
    )
    return y.reshape(x.shape)


def layer_norm_vjp(
    grad_y: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray | None,
    eps: float,
    start: int,
    stop: int,
    fixed_std: bool = False,
) -> np.ndarray:
    rows = _rows(x, start, stop)
    out = np.empty_like(rows)
    weight = _vector(weight, rows.shape[1], 1, x.dtype)
    sized(_layer_norm_vjp, out.size, EXP)(
        _rows(grad_y, start, stop), rows, weight, x.dtype.type(eps), bool(fixed_std), out
    )
    return out.reshape(x.shape)
