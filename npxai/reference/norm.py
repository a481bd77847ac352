"""Batch normalisation in evaluation mode (running statistics): forward and input VJP."""

import numpy as np


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """Shape a per-channel vector ``(C,)`` to broadcast over axis 1 of an ``ndim`` array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_scale(running_var: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """``s_c = gamma_c / sqrt(var_c + eps)`` (``gamma = 1`` when the layer has no affine weight)."""
    scale = 1 / np.sqrt(running_var + eps)
    return scale if weight is None else weight * scale


def batch_norm(
    x: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
) -> np.ndarray:
    """``y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c`` over channel axis 1."""
    scale = batch_norm_scale(running_var, weight, eps)
    y = (x - _per_channel(running_mean, x.ndim)) * _per_channel(scale, x.ndim)
    if bias is not None:
        y = y + _per_channel(bias, x.ndim)
    return y


def batch_norm_vjp(
    grad_y: np.ndarray, running_var: np.ndarray, weight: np.ndarray | None, eps: float
) -> np.ndarray:
    """``dL/dx = dL/dy * gamma_c / sqrt(var_c + eps)``."""
    return grad_y * _per_channel(batch_norm_scale(running_var, weight, eps), grad_y.ndim)
