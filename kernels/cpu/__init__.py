"""Numba CPU kernels: ``@njit(cache=True)``, ``prange`` over independent planes or rows, float32 and
float64, any batch size. Dense products go to BLAS through NumPy's ``matmul``.

Numba's OpenMP threads spin for a while after each parallel kernel by default, stealing the cores
from the BLAS call that follows (measured: VGG16's forward pass took 0.48 s instead of 0.25 s).
So, unless the user set ``OMP_WAIT_POLICY`` (or chose another Numba threading layer), npxai starts
Numba's thread pool with ``OMP_WAIT_POLICY=PASSIVE`` and then restores the environment, so that
other OpenMP users loaded later (torch) keep their own defaults. This works when Numba's OpenMP
runtime is not already the one torch loaded, i.e. when npxai is imported before torch.
"""

import os

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _touch(x):
    for i in prange(x.size):
        x[i] = i


def _start_thread_pool_passively() -> None:
    chosen = "OMP_WAIT_POLICY" in os.environ
    if not chosen:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        _touch(np.empty(4))
    finally:
        if not chosen:
            del os.environ["OMP_WAIT_POLICY"]


_start_thread_pool_passively()
