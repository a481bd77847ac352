"""numba.cuda kernels: the GPU twins of ``kernels/cpu``, what ``backend="cuda"`` runs (see
:mod:`npxai.backend` for what it needs).

Each module has the public functions of its CPU twin, with the same names and parameters, on
device arrays: arrays go in as anything with ``__cuda_array_interface__`` (numba device arrays,
CuPy arrays) and come out as numba device arrays, in the input's dtype (float32 or float64).
Moving data between host and device is the caller's business (:mod:`npxai.device` says when the
layers do it), so that activations can stay on the device through a whole explanation.

Importing this package imports ``numba.cuda``, which needs no GPU; launching a kernel does. The
tests run every kernel under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set by
``tests/conftest.py``) on tiny shapes, and on a real GPU with ``NPXAI_TEST_CUDA=device``.
"""

from __future__ import annotations

import math

from numba import cuda

#: Threads per block of the one-dimensional (element-wise) launches.
THREADS = 128


def grid_1d(n: int) -> tuple[int, int]:
    """``(blocks, threads)`` covering ``n`` elements, one thread each."""
    return max(1, math.ceil(n / THREADS)), THREADS


def as_device(a):
    """``a`` as a numba device array (no copy for an array with ``__cuda_array_interface__``)."""
    return a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)
