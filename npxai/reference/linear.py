"""Fully connected layer: forward and input vector-Jacobian product."""

import numpy as np


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``y[..., j] = sum_i x[..., i] * W[j, i] + b[j]``  (``W`` is ``(out, in)`` as in torch)."""
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y


def linear_vjp(grad_y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``dL/dx[..., i] = sum_j dL/dy[..., j] * W[j, i]``."""
    return grad_y @ weight
