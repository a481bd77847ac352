"""The plain arithmetic that the CPU backends write with NumPy operators, on the device: the
residual sum ``a + b`` (forward, and the two gradients meeting at a block's input), the products
of the LRP sum step, zeros, and the input check for non-finite values. Used by
:mod:`npxai.device`; ``tests/test_cuda_lrp.py`` compares each with NumPy. One thread per
element; arrays C-contiguous and of one shape and dtype.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import as_device, grid_1d


@cuda.jit
def _add(a, b, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] + b[i]


@cuda.jit
def _multiply(a, b, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] * b[i]


@cuda.jit
def _fill_zero(out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = 0


@cuda.jit
def _count_nonfinite(x, count):
    i = cuda.grid(1)
    if i < x.size and not math.isfinite(x[i]):
        cuda.atomic.add(count, 0, 1)


def _binary(kernel, a, b):
    a, b = as_device(a), as_device(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(
            f"{kernel.py_func.__name__[1:]}: operands must have one shape and dtype, got "
            f"{a.dtype} {a.shape} and {b.dtype} {b.shape}"
        )
    out = cuda.device_array(a.shape, a.dtype)
    kernel[grid_1d(a.size)](a.reshape(-1), b.reshape(-1), out.reshape(-1))
    return out


def add(a, b):
    """``a + b``."""
    return _binary(_add, a, b)


def multiply(a, b):
    """``a * b`` (element-wise)."""
    return _binary(_multiply, a, b)


def zeros(shape: tuple[int, ...], dtype) -> object:
    """A new device array of zeros (made on the device: nothing is sent from the host)."""
    out = cuda.device_array(shape, dtype)
    _fill_zero[grid_1d(out.size)](out.reshape(-1))
    return out


def count_nonfinite(x) -> int:
    """How many entries of ``x`` are NaN or infinite (``(~np.isfinite(x)).sum()``)."""
    x = as_device(x)
    count = cuda.to_device(np.zeros(1, np.int64))
    _count_nonfinite[grid_1d(x.size)](x.reshape(-1), count)
    return int(count.copy_to_host()[0])
