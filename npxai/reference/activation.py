"""Element-wise activations and softmax: forward and input vector-Jacobian product.

The derivative at a kink follows torch: ReLU'(0) = 0, ReLU6'(0) = ReLU6'(6) = 0, LeakyReLU'(0) = slope.
NaN follows torch too: every activation maps NaN to NaN; at a NaN the ReLU VJP passes the
gradient (torch's mask is ``x <= 0``) and LeakyReLU's scales it by the slope (its mask is
``x > 0``). ReLU6's VJP gives 0 at a NaN (the mask ``0 < x < 6``): torch's own gives 0 in its
vectorised blocks and the gradient in their scalar tail, so it has no single rule to follow;
Hardswish's gives NaN at a NaN (torch: NaN in its float64 vectorised blocks, the gradient
elsewhere), Hardsigmoid's 0 (torch's mask ``-3 < x < 3``).
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


def hardtanh(x: np.ndarray, min_val: float, max_val: float) -> np.ndarray:
    """``y = min(max(x, min_val), max_val)``, the bounds in the input's dtype (NaN stays NaN)."""
    return np.clip(x, x.dtype.type(min_val), x.dtype.type(max_val))


def hardtanh_vjp(grad_y: np.ndarray, x: np.ndarray, min_val: float, max_val: float) -> np.ndarray:
    """``dL/dx = dL/dy * [min_val < x < max_val]``: 0 at the bounds themselves, as torch (and at
    a NaN)."""
    inside = (x > x.dtype.type(min_val)) & (x < x.dtype.type(max_val))
    return np.where(inside, grad_y, 0)


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


def silu(x: np.ndarray) -> np.ndarray:
    """``y = x * sigmoid(x)`` (SiLU, Swish)."""
    return x * sigmoid(x)


def silu_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dL/dx = dL/dy * s (1 + x (1 - s))``, ``s = sigmoid(x)``."""
    s = sigmoid(x)
    return grad_y * s * (1 + x * (1 - s))


def hardsigmoid(x: np.ndarray) -> np.ndarray:
    """``y = min(max(x + 3, 0), 6) / 6``."""
    return np.clip(x + 3, 0, 6) / 6


def hardsigmoid_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dL/dx = dL/dy / 6`` where ``-3 < x < 3``, else 0 (0 at a NaN, as torch)."""
    return np.where((x > -3) & (x < 3), grad_y / 6, 0)


def hardswish(x: np.ndarray) -> np.ndarray:
    """``y = x min(max(x + 3, 0), 6) / 6``."""
    return x * np.clip(x + 3, 0, 6) / 6


def hardswish_vjp(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dL/dx`` = 0 where ``x < -3``, ``dL/dy (x / 3 + 1/2)`` where ``-3 <= x <= 3`` (and NaN at
    a NaN), ``dL/dy`` above."""
    return np.where(x < -3, 0, np.where(x > 3, grad_y, grad_y * (x / 3 + 0.5)))


#: GELU's tanh form: ``sqrt(2 / pi)`` and the cubic's coefficient.
GELU_BETA, GELU_KAPPA = np.sqrt(2 / np.pi), 0.044715


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    """``y = x Phi(x)``, ``Phi(x) = erfc(-x / sqrt 2) / 2`` (``approximate="none"``), or the tanh
    form ``x (1 + tanh(u)) / 2 = x sigmoid(2 u)``, ``u = sqrt(2/pi) (x + 0.044715 x^3)``
    (``"tanh"``). erfc and the sigmoid, not ``1 + erf`` and ``1 + tanh`` (torch's forms), keep
    ``Phi`` accurate where it is small (``x`` well below 0): the same function, fewer lost digits."""
    if approximate == "tanh":
        beta, kappa = x.dtype.type(GELU_BETA), x.dtype.type(GELU_KAPPA)
        return x * sigmoid(2 * beta * (x + kappa * x**3))
    from scipy.special import erfc  # here: importing scipy.special costs half a second

    return x * (0.5 * erfc(-x * x.dtype.type(np.sqrt(0.5))))


def gelu_vjp(grad_y: np.ndarray, x: np.ndarray, approximate: str) -> np.ndarray:
    """``dL/dx = dL/dy (Phi(x) + x phi(x))``, ``phi(x) = exp(-x^2 / 2) / sqrt(2 pi)``; for the
    tanh form, with ``s = sigmoid(2 u)``: ``dL/dy (s + 2 x s (1 - s) beta (1 + 3 kappa x^2))``
    (``beta = sqrt(2/pi)``, ``kappa = 0.044715``)."""
    if approximate == "tanh":
        beta, kappa = x.dtype.type(GELU_BETA), x.dtype.type(GELU_KAPPA)
        s = sigmoid(2 * beta * (x + kappa * x**3))
        return grad_y * (s + 2 * x * s * (1 - s) * beta * (1 + 3 * kappa * x * x))
    from scipy.special import erfc

    cdf = 0.5 * erfc(-x * x.dtype.type(np.sqrt(0.5)))
    pdf = np.exp(-0.5 * x * x) * x.dtype.type(1 / np.sqrt(2 * np.pi))
    return grad_y * (cdf + x * pdf)


def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """``y_i = exp(x_i - max x) / sum_k exp(x_k - max x)`` along ``dim``."""
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_vjp(grad_y: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    """``dL/dx_i = y_i * (dL/dy_i - sum_k dL/dy_k * y_k)`` along ``dim``."""
    return y * (grad_y - (grad_y * y).sum(axis=dim, keepdims=True))
