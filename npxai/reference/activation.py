"""Element-wise activations and softmax: forward and input vector-Jacobian product.

The derivative at a kink follows torch: ReLU'(0) = 0, ReLU6'(0) = ReLU6'(6) = 0, LeakyReLU'(0) = slope.
NaN follows torch too: every activation maps NaN to NaN; at a NaN the ReLU VJP passes the
gradient (torch's mask is ``x <= 0``) and LeakyReLU's scales it by the slope (its mask is
``x > 0``). ReLU6's VJP gives 0 at a NaN (the mask ``0 < x < 6``): torch's own gives 0 in its
vectorised blocks and the gradient in their scalar tail, so it has no single rule to follow.
"""

import numpy as np


def relu(x: np.ndarray) -> np.ndarray:
    """``y = max(x, 0)``."""
    return np.maximum(x, 0)


def relu_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dL/dx = dL/dy * [x > 0]`` (``0`` where ``x <= 0``, else ``dL/dy``: NaN passes it)."""
    return np.where(x <= 0, 0, grad_y)


def relu6(x: np.ndarray) -> np.ndarray:
    """``y = min(max(x, 0), 6)``."""
    return np.clip(x, 0, 6)


def relu6_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dL/dx = dL/dy * [0 < x < 6]`` (``0`` at a NaN)."""
    return np.where((x > 0) & (x < 6), grad_y, 0)


def leaky_relu(x: np.ndarray, negative_slope: float) -> np.ndarray:
    """``y = x`` where ``x > 0``, else ``negative_slope * x``."""
    return np.where(x > 0, x, x * negative_slope)


def leaky_relu_vjp(grad_y: np.ndarray, x: np.ndarray, negative_slope: float) -> np.ndarray:
    """``dL/dx = dL/dy`` where ``x > 0``, else ``negative_slope * dL/dy``."""
    return np.where(x > 0, grad_y, grad_y * negative_slope)


def tanh(x: np.ndarray) -> np.ndarray:
    """``y = tanh(x)``."""
    return np.tanh(x)


def tanh_vjp(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dL/dx = dL/dy * (1 - y^2)``."""
    return grad_y * (1 - y * y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``y = 1 / (1 + exp(-x))``, evaluated without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_vjp(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dL/dx = dL/dy * y * (1 - y)``."""
    return grad_y * y * (1 - y)


def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """``y_i = exp(x_i - max x) / sum_k exp(x_k - max x)`` along ``dim``."""
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_vjp(grad_y: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    """``dL/dx_i = y_i * (dL/dy_i - sum_k dL/dy_k * y_k)`` along ``dim``."""
    return y * (grad_y - (grad_y * y).sum(axis=dim, keepdims=True))
