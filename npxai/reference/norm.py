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


def _normalised(x: np.ndarray, eps: float, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x_hat, 1 / sigma)`` over axes ``start .. stop - 1``: ``x_hat = (x - mean) / sigma``,
    ``sigma = sqrt(var + eps)`` with the biased variance."""
    axes = tuple(range(start, stop))
    centred = x - x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + eps)
    return centred * inv_std, inv_std


def _over(v: np.ndarray, ndim: int, stop: int) -> np.ndarray:
    """A parameter of the normalised axes' shape, to broadcast over axes ``stop ..`` too."""
    return v.reshape(v.shape + (1,) * (ndim - stop))


def layer_norm(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
    start: int,
    stop: int,
) -> np.ndarray:
    """``y = (x - mean) / sqrt(var + eps) * w + b`` with the mean and the biased variance over
    axes ``start .. stop - 1`` (``torch.nn.LayerNorm``: the trailing axes; torchvision's
    ``LayerNorm2d``: channel axis 1), ``w`` and ``b`` of those axes' shape (absent: 1 and 0)."""
    y, _ = _normalised(x, eps, start, stop)
    if weight is not None:
        y = y * _over(weight, x.ndim, stop)
    if bias is not None:
        y = y + _over(bias, x.ndim, stop)
    return y


def layer_norm_vjp(
    grad_y: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray | None,
    eps: float,
    start: int,
    stop: int,
    fixed_std: bool = False,
) -> np.ndarray:
    """``dL/dx = (g - mean(g) - x_hat mean(g x_hat)) / sigma`` with ``g = dL/dy * w``, means over
    the normalised axes. ``fixed_std=True``: the VJP of the linear map ``x -> (x - mean) * w /
    sigma`` with ``sigma`` held at its value for ``x``, ``(g - mean(g)) / sigma`` (LRP's
    LayerNormRule)."""
    axes = tuple(range(start, stop))
    x_hat, inv_std = _normalised(x, eps, start, stop)
    g = grad_y if weight is None else grad_y * _over(weight, x.ndim, stop)
    g = g - g.mean(axis=axes, keepdims=True)
    if not fixed_std:
        g = g - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)
    return g * inv_std
