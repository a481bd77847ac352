"""The element-wise parts of the LRP step (:func:`npxai.lrp.step.linear_step`) on the device:
the functions of ``npxai/reference/lrp.py`` (same names, same arguments) on device arrays. The
dense parts (``W' x' + b'`` and ``W'^T s``) are the layer's own kernels (``linear``, ``conv2d``,
``conv2d_vjp``, the pools). ``tests/test_cuda_lrp.py`` compares each with the reference. One
thread per element.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from . import as_device, grid_1d

#: The rules' element-wise modifiers (npxai.reference.modifiers.MODIFIERS) by name, and the
#: stabilisers, as kernel codes.
MODIFIERS = {
    "positive": 0,
    "negative": 1,
    "ones": 2,
    "square": 3,
    "minus_positive": 4,
    "minus_negative": 5,
}
STABILIZERS = {"sign": 0, "clip": 1, "zero": 2}


@cuda.jit
def _modify(p, how, out):
    i = cuda.grid(1)
    if i < out.size:
        # branches, not max/min: numba 0.68 cannot compile the two-argument builtins for a GPU
        # (numba issue #10753; the simulator does not notice)
        v = p[i]
        if how == 2:
            out[i] = 1
        elif how == 3:
            out[i] = v * v
        elif (how == 0 or how == 4) and v > 0:
            out[i] = v if how == 0 else -v
        elif (how == 1 or how == 5) and v < 0:
            out[i] = v if how == 1 else -v
        else:
            out[i] = 0


def modify(x, how: str):
    """``npxai.lrp.rules.<how>(x)``: ``x+``, ``x-``, ones, ``x^2``, ``-x+`` or ``-x-`` (``how`` is
    the modifier's name)."""
    if how not in MODIFIERS:
        raise ValueError(f"modify: unknown modifier {how!r}; choose one of {', '.join(MODIFIERS)}")
    x = as_device(x)
    out = cuda.device_array(x.shape, x.dtype)
    _modify[grid_1d(x.size)](x.reshape(-1), MODIFIERS[how], out.reshape(-1))
    return out


@cuda.jit
def _ratio(share, z, epsilon, how, out):
    i = cuda.grid(1)
    if i < out.size:
        v = z[i]
        if how == 0:
            d = v + epsilon if v >= 0 else v - epsilon
        elif how == 1:
            d = abs(v) if abs(v) > epsilon else epsilon
            d = d if v >= 0 else -d
        else:
            d = v + epsilon if v == 0 else v
        if d != 0:
            out[i] = share[i] / d
        else:
            out[i] = 0


def relevance_ratio(share, z, epsilon: float, stabilizer: str):
    """``s = share / stab(z)``, 0 where ``stab(z) = 0`` (``npxai.lrp.rules.stabilize``)."""
    if stabilizer not in STABILIZERS:
        raise ValueError(f"relevance_ratio: unknown stabilizer {stabilizer!r}")
    share, z = as_device(share), as_device(z)
    out = cuda.device_array(z.shape, z.dtype)
    _ratio[grid_1d(z.size)](
        share.reshape(-1), z.reshape(-1), z.dtype.type(epsilon), STABILIZERS[stabilizer],
        out.reshape(-1),
    )  # fmt: skip
    return out


@cuda.jit
def _select(relevance, z0, positive, out):
    i = cuda.grid(1)
    if i < out.size:
        keep = z0[i] > 0 if positive else z0[i] < 0
        if keep:
            out[i] = relevance[i]
        else:
            out[i] = 0


def select_sign(relevance, z0, sign: str):
    """``relevance * (z0 > 0)`` (``sign="positive"``) or ``relevance * (z0 < 0)``
    (``"negative"``): the neurons a generalised-gamma group takes."""
    relevance, z0 = as_device(relevance), as_device(z0)
    out = cuda.device_array(relevance.shape, relevance.dtype)
    _select[grid_1d(out.size)](
        relevance.reshape(-1), z0.reshape(-1), sign == "positive", out.reshape(-1)
    )
    return out


@cuda.jit
def _place(part, coefficient, out, offset, channels, inner, out_channels):
    i = cuda.grid(1)
    if i < part.size:
        sample, rest = i // (channels * inner), i % (channels * inner)
        out[(sample * out_channels + offset) * inner + rest] = part[i] * coefficient


def stack(shares: list, coefficients: list[float]):
    """``[c_1 R_1; c_2 R_2; ...]`` along axis 1 (``numpy.concatenate([c * r ...], axis=1)``)."""
    shares = [as_device(r) for r in shares]
    first = shares[0]
    total = sum(r.shape[1] for r in shares)
    out = cuda.device_array((first.shape[0], total, *first.shape[2:]), first.dtype)
    offset = 0
    for c, r in zip(coefficients, shares, strict=True):
        if r.shape[0] != first.shape[0] or r.shape[2:] != first.shape[2:] or r.dtype != first.dtype:
            raise ValueError(
                f"stack: shares {first.dtype} {first.shape} and {r.dtype} {r.shape} must differ "
                "only in axis 1"
            )
        inner = r.size // (r.shape[0] * r.shape[1])
        _place[grid_1d(r.size)](r.reshape(-1), r.dtype.type(c), out.reshape(-1), offset,
                                r.shape[1], inner, total)  # fmt: skip
        offset += r.shape[1]
    return out


@cuda.jit
def _accumulate(total, coefficient, x, t):
    i = cuda.grid(1)
    if i < total.size:
        total[i] += t[i] * x[i] * coefficient


@cuda.jit
def _product(coefficient, x, t):
    i = cuda.grid(1)
    if i < t.size:
        t[i] = t[i] * x[i] * coefficient


def accumulate(total, coefficient: float, x, t):
    """``total + coefficient * x * t`` (``total=None``: 0), in place into ``total`` (or ``t``):
    one term's share of ``R_in``."""
    x, t = as_device(x), as_device(t)
    c = t.dtype.type(coefficient)
    if total is None:
        _product[grid_1d(t.size)](c, x.reshape(-1), t.reshape(-1))
        return t
    total = as_device(total)
    _accumulate[grid_1d(total.size)](total.reshape(-1), c, x.reshape(-1), t.reshape(-1))
    return total


@cuda.jit
def _count_nonzero(x, count):
    i = cuda.grid(1)
    if i < x.size and x[i] != 0:
        cuda.atomic.add(count, 0, 1)


def any_nonzero(x) -> bool:
    """``x.any()``: whether a term's input has a non-zero entry (else the step skips the term)."""
    x = as_device(x)
    count = cuda.to_device(np.zeros(1, np.int64))
    _count_nonzero[grid_1d(x.size)](x.reshape(-1), count)
    return bool(count.copy_to_host()[0])


@cuda.jit
def _count_below_zero(x, count):
    i = cuda.grid(1)
    if i < x.size and not x[i] >= 0:  # NaN counts
        cuda.atomic.add(count, 0, 1)


def nonnegative(x) -> bool:
    """``x.min() >= 0``: whether every entry is ``>= 0`` (False where one is NaN)."""
    x = as_device(x)
    count = cuda.to_device(np.zeros(1, np.int64))
    _count_below_zero[grid_1d(x.size)](x.reshape(-1), count)
    return not count.copy_to_host()[0]
