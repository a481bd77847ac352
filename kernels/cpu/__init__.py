"""Numba CPU kernels: ``@njit(cache=True)``, ``prange`` over independent planes or rows, float32 and
float64, any batch size. Dense products go to BLAS through NumPy's ``matmul``.

The kernels alternate with BLAS calls, and so do their thread pools. With Numba's OpenMP layer the
OpenMP threads keep spinning after each kernel and steal the cores from the next BLAS call; when
torch was imported first (its OpenMP runtime is then the one Numba binds to) ResNet18's forward
pass ran several times slower (the README gives the numbers and the command). TBB's workers yield, whatever was imported before, so npxai
runs its kernels on Numba's TBB layer (the ``tbb`` package is a dependency for this reason) unless
``NUMBA_THREADING_LAYER`` says otherwise. If TBB cannot load, Numba raises; nothing falls back.
"""

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "tbb"
