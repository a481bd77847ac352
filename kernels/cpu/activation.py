"""Element-wise activations and softmax, compiled. Same functions as ``npxai.reference.activation``.

The element-wise kernels run over the flattened (contiguous) array, so one compiled version
serves every shape; softmax runs over rows after moving ``dim`` last. ReLU runs its vjp's kernel
with ``dL/dy = x`` (the same values, NaN included): one kernel fewer for a first call to compile
(0.3-0.5 s with an empty cache, Numba's compile events), as fast (0.9-1.1 ms both on
1 x 64 x 224 x 224).
"""

import math

import numpy as np
from numba import njit, prange

from ...reference.activation import GELU_BETA, GELU_KAPPA
from .threads import EXP, STREAM, sized


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(-1)


@njit(parallel=True, cache=True)
def _relu_vjp(g, x, out):
    for i in prange(x.size):
        out[i] = 0 if x[i] <= 0 else g[i]  # NaN passes the gradient, as in torch


@njit(parallel=True, cache=True)
def _relu6(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v < 0 else (6 if v > 6 else v)  # NaN stays NaN


@njit(parallel=True, cache=True)
def _relu6_vjp(g, x, out):
    for i in prange(x.size):
        out[i] = g[i] if 0 < x[i] < 6 else 0


@njit(parallel=True, cache=True)
def _hardtanh(x, low, high, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = low if v < low else (high if v > high else v)  # NaN stays NaN


@njit(parallel=True, cache=True)
def _hardtanh_vjp(g, x, low, high, out):
    for i in prange(x.size):
        out[i] = g[i] if low < x[i] < high else 0


@njit(parallel=True, cache=True)
def _leaky_relu(x, slope, y):
    for i in prange(x.size):
        y[i] = x[i] if x[i] > 0 else x[i] * slope


@njit(parallel=True, cache=True)
def _leaky_relu_vjp(g, x, slope, out):
    for i in prange(x.size):
        out[i] = g[i] if x[i] > 0 else g[i] * slope


@njit(parallel=True, cache=True)
def _tanh(x, y):
    for i in prange(x.size):
        y[i] = np.tanh(x[i])


@njit(parallel=True, cache=True)
def _tanh_vjp(g, y, out):
    for i in prange(y.size):
        out[i] = g[i] * (1 - y[i] * y[i])


@njit(parallel=True, cache=True)
def _sigmoid(x, y):
    for i in prange(x.size):
        e = np.exp(-abs(x[i]))
        y[i] = 1 / (1 + e) if x[i] >= 0 else e / (1 + e)


@njit(parallel=True, cache=True)
def _sigmoid_vjp(g, y, out):
    for i in prange(y.size):
        out[i] = g[i] * y[i] * (1 - y[i])


@njit(cache=True)
def _sig(v):
    e = np.exp(-abs(v))
    return 1 / (1 + e) if v >= 0 else e / (1 + e)


@njit(parallel=True, cache=True)
def _silu(x, y):
    for i in prange(x.size):
        y[i] = x[i] * _sig(x[i])


@njit(parallel=True, cache=True)
def _silu_vjp(g, x, out):
    for i in prange(x.size):
        s = _sig(x[i])
        out[i] = g[i] * s * (1 + x[i] * (1 - s))


@njit(cache=True)
def _clip06(v):
    return 0 if v < 0 else (6 if v > 6 else v)  # NaN stays NaN


@njit(parallel=True, cache=True)
def _hardsigmoid(x, y):
    for i in prange(x.size):
        y[i] = _clip06(x[i] + 3) / 6


@njit(parallel=True, cache=True)
def _hardsigmoid_vjp(g, x, out):
    for i in prange(x.size):
        out[i] = g[i] / 6 if -3 < x[i] < 3 else 0


@njit(parallel=True, cache=True)
def _hardswish(x, y):
    for i in prange(x.size):
        y[i] = x[i] * _clip06(x[i] + 3) / 6


@njit(parallel=True, cache=True)
def _hardswish_vjp(g, x, out):
    for i in prange(x.size):
        v = x[i]
        out[i] = 0 if v < -3 else (g[i] if v > 3 else g[i] * (v / 3 + 0.5))  # NaN: NaN


@njit(parallel=True, cache=True)
def _gelu(x, tanh_form, beta, kappa, root_half, y):
    for i in prange(x.size):
        v = x[i]
        if tanh_form:
            y[i] = v * _sig(2 * beta * (v + kappa * v**3))
        else:
            y[i] = v * (0.5 * math.erfc(-v * root_half))


@njit(parallel=True, cache=True)
def _gelu_vjp(g, x, tanh_form, beta, kappa, root_half, inv_root_2pi, out):
    for i in prange(x.size):
        v = x[i]
        if tanh_form:
            s = _sig(2 * beta * (v + kappa * v**3))
            out[i] = g[i] * (s + 2 * v * s * (1 - s) * beta * (1 + 3 * kappa * v * v))
        else:
            cdf = 0.5 * math.erfc(-v * root_half)
            out[i] = g[i] * (cdf + v * (np.exp(-0.5 * v * v) * inv_root_2pi))


@njit(parallel=True, cache=True)
def _softmax_rows(x, y):
    for r in prange(x.shape[0]):
        top = x[r, 0]
        for k in range(1, x.shape[1]):
            top = max(top, x[r, k])
        total = x.dtype.type(0)  # accumulate in the array's dtype, as the reference does
        for k in range(x.shape[1]):
            y[r, k] = np.exp(x[r, k] - top)
            total += y[r, k]
        for k in range(x.shape[1]):
            y[r, k] /= total


@njit(parallel=True, cache=True)
def _softmax_vjp_rows(g, y, out):
    for r in prange(y.shape[0]):
        dot = y.dtype.type(0)
        for k in range(y.shape[1]):
            dot += g[r, k] * y[r, k]
        for k in range(y.shape[1]):
            out[r, k] = y[r, k] * (g[r, k] - dot)


def _elementwise(kernel, *arrays_then_scalars, shape, cost=STREAM):
    arrays = [_flat(a) if isinstance(a, np.ndarray) else a for a in arrays_then_scalars]
    out = np.empty(arrays[0].size, dtype=arrays[0].dtype)
    sized(kernel, out.size, cost)(*arrays, out)
    return out.reshape(shape)


def relu(x: np.ndarray) -> np.ndarray:
    # the vjp's kernel with dL/dy = x: x where x > 0 or NaN, else 0 (one kernel fewer to compile)
    return _elementwise(_relu_vjp, x, x, shape=x.shape)


def relu_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _elementwise(_relu_vjp, grad_y, x, shape=x.shape)


def relu6(x: np.ndarray) -> np.ndarray:
    return _elementwise(_relu6, x, shape=x.shape)


def relu6_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _elementwise(_relu6_vjp, grad_y, x, shape=x.shape)


def hardtanh(x: np.ndarray, min_val: float, max_val: float) -> np.ndarray:
    low, high = x.dtype.type(min_val), x.dtype.type(max_val)
    return _elementwise(_hardtanh, x, low, high, shape=x.shape)


def hardtanh_vjp(grad_y: np.ndarray, x: np.ndarray, min_val: float, max_val: float) -> np.ndarray:
    low, high = x.dtype.type(min_val), x.dtype.type(max_val)
    return _elementwise(_hardtanh_vjp, grad_y, x, low, high, shape=x.shape)


def leaky_relu(x: np.ndarray, negative_slope: float) -> np.ndarray:
    return _elementwise(_leaky_relu, x, x.dtype.type(negative_slope), shape=x.shape)


def leaky_relu_vjp(grad_y: np.ndarray, x: np.ndarray, negative_slope: float) -> np.ndarray:
    return _elementwise(_leaky_relu_vjp, grad_y, x, x.dtype.type(negative_slope), shape=x.shape)


def tanh(x: np.ndarray) -> np.ndarray:
    return _elementwise(_tanh, x, shape=x.shape, cost=EXP)


def tanh_vjp(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _elementwise(_tanh_vjp, grad_y, y, shape=y.shape)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return _elementwise(_sigmoid, x, shape=x.shape, cost=EXP)


def sigmoid_vjp(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _elementwise(_sigmoid_vjp, grad_y, y, shape=y.shape)


def silu(x: np.ndarray) -> np.ndarray:
    return _elementwise(_silu, x, shape=x.shape, cost=EXP)


def silu_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _elementwise(_silu_vjp, grad_y, x, shape=x.shape, cost=EXP)


def hardsigmoid(x: np.ndarray) -> np.ndarray:
    return _elementwise(_hardsigmoid, x, shape=x.shape)


def hardsigmoid_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _elementwise(_hardsigmoid_vjp, grad_y, x, shape=x.shape)


def hardswish(x: np.ndarray) -> np.ndarray:
    return _elementwise(_hardswish, x, shape=x.shape)


def hardswish_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _elementwise(_hardswish_vjp, grad_y, x, shape=x.shape)


def _gelu_constants(dtype: np.dtype) -> tuple:
    t = np.dtype(dtype).type
    return t(GELU_BETA), t(GELU_KAPPA), t(np.sqrt(0.5))


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    return _elementwise(_gelu, x, approximate == "tanh", *_gelu_constants(x.dtype), shape=x.shape,
                        cost=EXP)  # fmt: skip


def gelu_vjp(grad_y: np.ndarray, x: np.ndarray, approximate: str) -> np.ndarray:
    constants = (*_gelu_constants(x.dtype), x.dtype.type(1 / np.sqrt(2 * np.pi)))
    return _elementwise(_gelu_vjp, grad_y, x, approximate == "tanh", *constants, shape=x.shape,
                        cost=EXP)  # fmt: skip


def _rows(x: np.ndarray, dim: int) -> np.ndarray:
    """``x`` with ``dim`` moved last, as a contiguous 2-D array of rows."""
    moved = np.moveaxis(x, dim, -1)
    return np.ascontiguousarray(moved).reshape(-1, moved.shape[-1])


def _unrows(rows: np.ndarray, like: np.ndarray, dim: int) -> np.ndarray:
    moved_shape = np.moveaxis(like, dim, -1).shape
    return np.moveaxis(rows.reshape(moved_shape), -1, dim)


def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    rows = _rows(x, dim)
    out = np.empty_like(rows)
    sized(_softmax_rows, out.size, EXP)(rows, out)
    return _unrows(out, x, dim)


def softmax_vjp(grad_y: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    rows = _rows(y, dim)
    out = np.empty_like(rows)
    sized(_softmax_vjp_rows, out.size, STREAM)(_rows(grad_y, dim), rows, out)
    return _unrows(out, y, dim)
