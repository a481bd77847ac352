"""The LRP step's stabilised division in one compiled pass. Same function as
``npxai.reference.lrp``: where NumPy makes the denominator, its mask and the quotient as three
arrays, this reads ``share`` and ``z`` once and writes ``s`` once."""

import numpy as np
from numba import njit, prange

#: The stabilizers of npxai.rules, as kernel codes.
STABILIZERS = {"sign": 0, "clip": 1, "zero": 2}


@njit(parallel=True, cache=True)
def _ratio(share, z, epsilon, how, out):
    for i in prange(out.size):
        v = z[i]
        if how == 0:  # z + eps sgn0(z)
            d = v + epsilon if v >= 0 else v - epsilon
        elif how == 1:  # sgn0(z) max(|z|, eps)
            d = max(abs(v), epsilon)
            d = d if v >= 0 else -d
        else:  # z + eps [z = 0]
            d = v + epsilon if v == 0 else v
        out[i] = share[i] / d if d != 0 else 0


def relevance_ratio(
    share: np.ndarray, z: np.ndarray, epsilon: float, stabilizer: str
) -> np.ndarray:
    """``s = share / stab(z)``, 0 where ``stab(z) = 0``."""
    if stabilizer not in STABILIZERS:
        raise ValueError(
            f"relevance_ratio: unknown stabilizer {stabilizer!r}; choose one of {', '.join(STABILIZERS)}"
        )
    if share.shape != z.shape or share.dtype != z.dtype:
        raise ValueError(
            f"relevance_ratio: share {share.dtype} {share.shape} and z {z.dtype} {z.shape} must "
            "have one shape and dtype"
        )
    out = np.empty(z.shape, z.dtype)
    _ratio(
        np.ascontiguousarray(share).reshape(-1), np.ascontiguousarray(z).reshape(-1),
        z.dtype.type(epsilon), STABILIZERS[stabilizer], out.reshape(-1),
    )  # fmt: skip
    return out
