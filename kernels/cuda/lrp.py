"""The element-wise parts of the LRP step (:func:`npxai.lrp.linear_step`) on the device: the
rules' modifiers, the stabilised ratio, the sign selection of the generalised gamma and the
accumulation of ``R_in``. The dense parts (``W' x' + b'`` and ``W'^T s``) are the layer's own
kernels (``linear``, ``conv2d``, ``conv2d_vjp``, the pools).

Each function's NumPy counterpart is named in its docstring; ``tests/test_cuda_lrp.py`` compares
them. One thread per element.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from . import as_device, grid_1d

#: The rules' modifiers (npxai.rules) by name, and the stabilisers, as kernel codes.
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


def modify(p, how: str):
    """``npxai.rules.<how>(p)``: ``p+``, ``p-``, ones, ``p^2``, ``-p+`` or ``-p-`` (``how`` is the
    modifier's name)."""
    if how not in MODIFIERS:
        raise ValueError(f"modify: unknown modifier {how!r}; choose one of {', '.join(MODIFIERS)}")
    p = as_device(p)
    out = cuda.device_array(p.shape, p.dtype)
    _modify[grid_1d(p.size)](p.reshape(-1), MODIFIERS[how], out.reshape(-1))
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
    """``s = share / stab(z)``, 0 where ``stab(z) = 0``: ``npxai.lrp._divide(share,
    npxai.rules.stabilize(z, epsilon, stabilizer))``."""
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
def _add_product(total, coefficient, x, t):
    i = cuda.grid(1)
    if i < total.size:
        total[i] += coefficient * x[i] * t[i]


def add_product(total, coefficient: float, x, t) -> None:
    """``total += coefficient * x * t`` in place (one term's share of ``R_in``)."""
    total, x, t = as_device(total), as_device(x), as_device(t)
    _add_product[grid_1d(total.size)](
        total.reshape(-1), total.dtype.type(coefficient), x.reshape(-1), t.reshape(-1)
    )


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
