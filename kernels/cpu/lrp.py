"""The element-wise parts of the LRP step, compiled: the functions of ``npxai/reference/lrp.py``
(same names, same arguments). Where NumPy makes several arrays (the ratio's denominator, its mask
and the quotient; the mask of the sign selection; the product and the sum), one compiled pass
reads each input once and writes once. ``modify``, ``nonnegative``, ``any_nonzero`` and ``stack``
are the reference's own: NumPy already does each in one pass. The ratio's ``max(|z|, eps)`` is
written out: Numba's builtin ``max`` is an overload compiled apart (about 0.1 s of a first call)."""

import numpy as np
from numba import njit, prange

from ...reference.lrp import any_nonzero, modify, nonnegative, stack
from .threads import STREAM, sized

__all__ = ["accumulate", "any_nonzero", "modify", "nonnegative", "relevance_ratio",
           "select_sign", "stack"]  # fmt: skip

#: The stabilizers of npxai.lrp.rules, as kernel codes.
STABILIZERS = {"sign": 0, "clip": 1, "zero": 2}


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def _check(name: str, a: np.ndarray, b: np.ndarray, first: str, second: str) -> None:
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(
            f"{name}: {first} {a.dtype} {a.shape} and {second} {b.dtype} {b.shape} must have one "
            "shape and dtype"
        )


@njit(parallel=True, cache=True)
def _ratio(share, z, epsilon, how, out):
    for i in prange(out.size):
        v = z[i]
        if how == 0:  # z + eps sgn0(z)
            d = v + epsilon if v >= 0 else v - epsilon
        elif how == 1:  # sgn0(z) max(|z|, eps)
            d = abs(v)
            d = epsilon if epsilon > d else d  # max(|z|, eps), NaN kept; no builtin to compile
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
    _check("relevance_ratio", share, z, "share", "z")
    out = np.empty(z.shape, z.dtype)
    sized(_ratio, out.size, STREAM)(
        _flat(share), _flat(z), z.dtype.type(epsilon), STABILIZERS[stabilizer], out.reshape(-1)
    )
    return out


@njit(parallel=True, cache=True)
def _select(relevance, z0, positive, out):
    for i in prange(out.size):
        keep = z0[i] > 0 if positive else z0[i] < 0
        out[i] = relevance[i] if keep else 0


def select_sign(relevance: np.ndarray, z0: np.ndarray, sign: str) -> np.ndarray:
    """``relevance * [z0 > 0]`` (``"positive"``) or ``relevance * [z0 < 0]`` (``"negative"``)."""
    if sign not in ("positive", "negative"):
        raise ValueError(f"select_sign: sign must be 'positive' or 'negative', got {sign!r}")
    _check("select_sign", relevance, z0, "relevance", "z0")
    out = np.empty(relevance.shape, relevance.dtype)
    sized(_select, out.size, STREAM)(
        _flat(relevance), _flat(z0), sign == "positive", out.reshape(-1)
    )
    return out


@njit(parallel=True, cache=True)
def _accumulate(total, coefficient, x, t):
    for i in prange(t.size):
        total[i] += t[i] * x[i] * coefficient


@njit(parallel=True, cache=True)
def _product(coefficient, x, t):
    for i in prange(t.size):
        t[i] = t[i] * x[i] * coefficient


def accumulate(
    total: np.ndarray | None, coefficient: float, x: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """``total + coefficient * x * t`` (``total=None``: 0), in place into ``total`` (or ``t``)."""
    _check("accumulate", x, t, "x", "t")
    c, t = t.dtype.type(coefficient), np.ascontiguousarray(t)
    if total is None:
        sized(_product, t.size, STREAM)(c, _flat(x), t.reshape(-1))
        return t
    _check("accumulate", total, t, "total", "t")
    total = np.ascontiguousarray(total)
    sized(_accumulate, t.size, STREAM)(total.reshape(-1), c, _flat(x), t.reshape(-1))
    return total
