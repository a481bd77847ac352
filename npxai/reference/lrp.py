"""The element-wise parts of the LRP step (:func:`npxai.lrp.step.linear_step`), in NumPy: the
rules' input modifiers (``npxai/reference/modifiers.py``), the stabilised ratio ``s = R_out /
stab(z)``, the sign selection of the generalised gamma, the stacked shares of the fused step and the accumulation of ``R_in``. The
dense parts (``W' x' + b'``, ``W'^T s``) are the layer's own maps. Twins, with these functions:
``kernels/cpu/lrp.py`` and ``kernels/cuda/lrp.py``."""

from __future__ import annotations

import numpy as np

from .modifiers import MODIFIERS, stabilize


def modify(x: np.ndarray, how: str) -> np.ndarray:
    """``x+``, ``x-``, ``-x+``, ``-x-``, ones or ``x^2``: the modifier named ``how`` (a key of
    :data:`MODIFIERS`)."""
    return MODIFIERS[how](x)


def nonnegative(x: np.ndarray) -> bool:
    """Whether every entry of ``x`` is ``>= 0`` (False where one is NaN)."""
    return bool(x.min() >= 0)


def any_nonzero(x: np.ndarray) -> bool:
    """Whether ``x`` has an entry that is not 0."""
    return bool(x.any())


def relevance_ratio(
    share: np.ndarray, z: np.ndarray, epsilon: float, stabilizer: str
) -> np.ndarray:
    """``s = share / stab(z)``, and 0 where ``stab(z)`` is exactly 0 (see :mod:`npxai.lrp.rules`
    for the stabilizers ``"sign"``, ``"clip"`` and ``"zero"``)."""
    d = stabilize(z, epsilon, stabilizer)
    return np.divide(share, d, out=np.zeros_like(share), where=d != 0)


def select_sign(relevance: np.ndarray, z0: np.ndarray, sign: str) -> np.ndarray:
    """``relevance * [z0 > 0]`` (``sign="positive"``) or ``relevance * [z0 < 0]``
    (``"negative"``): the neurons a generalised-gamma group takes."""
    return relevance * (z0 > 0 if sign == "positive" else z0 < 0)


def stack(shares: list[np.ndarray], coefficients: list[float]) -> np.ndarray:
    """``[c_1 R_1; c_2 R_2; ...]``: the groups' shares, each times its coefficient, along axis 1
    (the outputs of the fused step's stacked weights)."""
    return np.concatenate([c * r for c, r in zip(coefficients, shares, strict=True)], axis=1)


def accumulate(
    total: np.ndarray | None, coefficient: float, x: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """``total + coefficient * x * t`` (``total=None``: 0), one term's share of ``R_in``; ``t`` is
    the term's ``W'^T s``. May overwrite ``total`` and ``t``."""
    product = t * x * coefficient
    return product if total is None else total + product
