"""The modifiers of the LRP rules in NumPy: of the input and the parameters (``p+``, ``p-``,
``p^2``, ...) and of the denominator (the stabilizers). :mod:`npxai.lrp.rules` builds its rules
from them; the step's element-wise functions (``npxai/reference/lrp.py``) apply them."""

from __future__ import annotations

import numpy as np

STABILIZERS = ("sign", "clip", "zero")


def sgn0(z: np.ndarray) -> np.ndarray:
    """The sign of ``z`` with ``sgn0(0) = +1``."""
    return np.where(z >= 0, 1, -1).astype(z.dtype)


def stabilize(z: np.ndarray, epsilon: float, how: str) -> np.ndarray:
    """The denominator ``stab(z)`` (``how``: ``"sign"`` ``z + eps sgn0(z)``, ``"clip"``
    ``sgn0(z) max(|z|, eps)``, ``"zero"`` ``z + eps [z = 0]``; see :mod:`npxai.lrp.rules`)."""
    if how == "sign":
        return np.where(z >= 0, z + epsilon, z - epsilon)  # z + epsilon sgn0(z)
    if how == "clip":
        return sgn0(z) * np.maximum(np.abs(z), epsilon)
    return np.where(z == 0, z + epsilon, z)  # z + epsilon [z = 0], in z's dtype


def identity(p: np.ndarray) -> np.ndarray:
    """``p``, unmodified."""
    return p


def positive(p: np.ndarray) -> np.ndarray:
    """``p+ = max(p, 0)``."""
    return np.maximum(p, 0)


def negative(p: np.ndarray) -> np.ndarray:
    """``p- = min(p, 0)``."""
    return np.minimum(p, 0)


def minus_positive(p: np.ndarray) -> np.ndarray:
    """``-p+``."""
    return -np.maximum(p, 0)


def minus_negative(p: np.ndarray) -> np.ndarray:
    """``-p-``."""
    return -np.minimum(p, 0)


def ones(p: np.ndarray) -> np.ndarray:
    """All ones, in ``p``'s shape."""
    return np.ones_like(p)


def square(p: np.ndarray) -> np.ndarray:
    """``p^2``."""
    return p**2


#: The modifiers that run as one element-wise kernel on every backend, by name.
MODIFIERS = {
    f.__name__: f for f in (positive, negative, minus_positive, minus_negative, ones, square)
}
