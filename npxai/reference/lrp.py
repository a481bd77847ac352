"""The element-wise heart of the LRP step (:func:`npxai.lrp.linear_step`): each output neuron's
relevance over its stabilised denominator, ``s = R_out / stab(z)``, in NumPy. Twins:
``kernels/cpu/lrp.py`` (one fused pass) and ``kernels/cuda/lrp.py``."""

from __future__ import annotations

import numpy as np

from ..rules import stabilize


def relevance_ratio(
    share: np.ndarray, z: np.ndarray, epsilon: float, stabilizer: str
) -> np.ndarray:
    """``s = share / stab(z)``, and 0 where ``stab(z)`` is exactly 0 (see :mod:`npxai.rules` for
    the stabilizers ``"sign"``, ``"clip"`` and ``"zero"``)."""
    d = stabilize(z, epsilon, stabilizer)
    return np.divide(share, d, out=np.zeros_like(share), where=d != 0)
