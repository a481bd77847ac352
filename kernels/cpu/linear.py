"""Fully connected layer for the compiled backend. Same functions as ``npxai.reference.linear``.

The product goes to BLAS (:func:`.blas.matmul`), and NumPy adds the bias in place: no kernel of
its own, since the parallel one that did it was no faster and cost 0.5-0.75 s of compilation at
the first call (Numba's compile events in LeNet's first LRP, empty cache).
"""

import numpy as np

from . import blas


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    y = blas.matmul(rows, weight.T)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def linear_vjp(grad_y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return blas.matmul(grad_y, weight)
