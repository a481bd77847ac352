"""Fully connected layer, compiled. Same functions as ``npxai.reference.linear``.

The product goes to BLAS (:func:`.blas.matmul`); the bias is added in place by a parallel kernel.
"""

import numpy as np
from numba import njit, prange

from . import blas


@njit(parallel=True, cache=True)
def _add_bias_rows(y, bias):
    for r in prange(y.shape[0]):
        for j in range(y.shape[1]):
            y[r, j] += bias[j]


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    y = blas.matmul(rows, weight.T)
    if bias is not None:
        _add_bias_rows(y, bias)
    return y.reshape(*x.shape[:-1], weight.shape[0])


def linear_vjp(grad_y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return blas.matmul(grad_y, weight)
