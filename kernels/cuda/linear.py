"""Fully connected layer on the GPU. Same functions as ``kernels/cpu/linear.py``.

Both functions are one launch of a shared-memory tiled GEMM, ``C = A @ B``, which this module also
provides (privately) to ``kernels/cuda/conv.py``:

* A block of ``TILE x TILE`` (16 x 16) threads owns a ``TILE x TILE`` tile of ``C``. For each
  step of ``TILE`` along the reduction axis the block loads one tile of ``A`` and one of ``B`` into
  shared memory (``cuda.shared.array``), one element per thread, zero-filled past the edges,
  waits (``cuda.syncthreads``), and every thread adds its row of the ``A`` tile times its column
  of the ``B`` tile to a register accumulator; each global element is thus read ``TILE`` times
  fewer than by a direct kernel. Threads outside ``C`` still load and synchronise, so that every
  barrier is reached by the whole block.
* What "loading an element of ``A`` / ``B``" and "storing an element of ``C``" mean is left to
  three small device functions given to :func:`_gemm_kernel`: here plain 2-D reads, with the
  transposes as swapped indices (``B[k, n] = W[n, k]`` for the forward); in the convolution the
  im2col index arithmetic, done on the fly, so that no column matrix is ever written.
* Rows of ``C`` beyond the 65535 blocks of the grid's ``y`` axis are covered by a block-stride
  loop; the ``z`` axis of the grid indexes independent problems (the groups of a convolution).

float32 accumulates in float32 (as the CPU kernels' BLAS does; over ``K`` terms the rounding
error grows like ``sqrt(K) * 6e-8`` relative to the terms), float64 in float64.

Unmeasured: there is no GPU on the machine this was written on, so the tiled formulation is
the textbook choice, not a measured one. A benchmark on a GPU should compare, for VGG-16's and
ResNet-50's linear layers at batch 1 and 64, this kernel against a direct kernel (one thread per
output, no shared memory) and against cuBLAS (CuPy's ``matmul``), and try ``TILE = 32`` and a
register-blocked variant (several outputs per thread). The transposed ``B`` read of the forward
(``W[n, k]`` with ``n`` along ``threadIdx.x``) is not coalesced; a benchmark should also say
whether loading it with the thread roles swapped pays.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from . import as_device

#: Side of the square tiles of C, A and B (threads per block: TILE * TILE).
TILE = 16

#: Most blocks along the grid's y axis (CUDA's limit); more rows of tiles loop.
_MAX_GRID_Y = 65535


def _gemm_kernel(load_a, load_b, store, dtype):
    """A tiled GEMM kernel ``gemm(a, b, c, bias, m, n, k, params)`` for ``C[m, n] = sum_k A[m, k]
    * B[k, n]`` per problem ``z = blockIdx.z``, in ``dtype`` (float32 or float64: shared memory
    needs its element type when the kernel is compiled).

    ``load_a(tile, ty, tx, a, params, z, row, kk)`` writes ``A[row, kk]`` into ``tile[ty, tx]``,
    ``load_b(tile, ty, tx, b, params, z, kk, col)`` writes ``B[kk, col]``; both are called only
    with indices inside ``A`` and ``B``. ``store(c, bias, params, z, row, col, value)`` writes
    ``value = C[row, col]`` (plus any bias) to wherever it belongs. ``params`` is a tuple of ints
    for the index arithmetic.
    """
    return _cached_gemm_kernel(load_a, load_b, store, np.dtype(dtype).type)


@functools.cache
def _cached_gemm_kernel(load_a, load_b, store, scalar):
    @cuda.jit
    def gemm(a, b, c, bias, m, n, k, params):
        tile_a = cuda.shared.array((TILE, TILE), dtype=scalar)
        tile_b = cuda.shared.array((TILE, TILE), dtype=scalar)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        z = cuda.blockIdx.z
        col = cuda.blockIdx.x * TILE + tx
        steps = (k + TILE - 1) // TILE
        row_tiles = (m + TILE - 1) // TILE
        for row_tile in range(cuda.blockIdx.y, row_tiles, cuda.gridDim.y):
            row = row_tile * TILE + ty
            acc = scalar(0)
            for step in range(steps):
                kk = step * TILE + tx
                if row < m and kk < k:
                    load_a(tile_a, ty, tx, a, params, z, row, kk)
                else:
                    tile_a[ty, tx] = 0
                kk = step * TILE + ty
                if kk < k and col < n:
                    load_b(tile_b, ty, tx, b, params, z, kk, col)
                else:
                    tile_b[ty, tx] = 0
                cuda.syncthreads()
                for t in range(TILE):
                    acc += tile_a[ty, t] * tile_b[t, tx]
                cuda.syncthreads()
            if row < m and col < n:
                store(c, bias, params, z, row, col, acc)

    return gemm


def _launch_gemm(kernel, a, b, c, bias, m, n, k, params, problems=1):
    """Launches ``kernel`` (from :func:`_gemm_kernel`) over an ``m x n`` output per problem."""
    if m == 0 or n == 0 or problems == 0:
        return
    grid = (math.ceil(n / TILE), min(math.ceil(m / TILE), _MAX_GRID_Y), problems)
    kernel[grid, (TILE, TILE)](a, b, c, bias, m, n, k, params)


def _no_bias(dtype):
    """A one-element stand-in for an absent bias (kernels take an array either way)."""
    return cuda.device_array(1, dtype)


@cuda.jit(device=True)
def _load_2d(tile, ty, tx, a, params, z, row, col):
    # params[0]: the matrix is stored transposed (read a[col, row])
    if params[0]:
        tile[ty, tx] = a[col, row]
    else:
        tile[ty, tx] = a[row, col]


@cuda.jit(device=True)
def _load_2d_b(tile, ty, tx, b, params, z, row, col):
    # params[1]: B is stored transposed (read b[col, row])
    if params[1]:
        tile[ty, tx] = b[col, row]
    else:
        tile[ty, tx] = b[row, col]


@cuda.jit(device=True)
def _store_2d(c, bias, params, z, row, col, value):
    # params[2]: add bias[col]
    if params[2]:
        c[row, col] = value + bias[col]
    else:
        c[row, col] = value


def _rows(a, name):
    """``a`` (``(..., features)``) as a 2-D ``(rows, features)`` device array."""
    a = as_device(a)
    if a.ndim == 2:
        return a  # any strides: the kernel indexes it directly
    try:
        return a.reshape(-1, tuple(a.shape)[-1])
    except NotImplementedError as error:  # numba reshapes contiguous arrays only
        raise ValueError(f"{name} must be C-contiguous when it has more than two axes") from error


def _check_dtype(*arrays):
    dtype = arrays[0].dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"float32 or float64 arrays expected, got {dtype}")
    if any(a.dtype != dtype for a in arrays[1:]):
        raise TypeError(f"all arrays must share one dtype, got {[str(a.dtype) for a in arrays]}")
    return dtype


def linear(x, weight, bias):
    """``y[..., j] = sum_i x[..., i] * W[j, i] + b[j]``  (``W`` is ``(out, in)`` as in torch).

    One tiled GEMM ``rows(x) @ W^T`` (``W^T`` read in place), the bias added as each output is
    stored. ``x`` is ``(..., in)``, C-contiguous if it has more than two axes; returns a new
    ``(..., out)`` device array.
    """
    x, weight = as_device(x), as_device(weight)
    bias = None if bias is None else as_device(bias)
    dtype = _check_dtype(x, weight, *([] if bias is None else [bias]))
    rows = _rows(x, "x")
    m, k = rows.shape
    n = weight.shape[0]
    y = cuda.device_array((m, n), dtype)
    kernel = _gemm_kernel(_load_2d, _load_2d_b, _store_2d, dtype)
    bias_arg = _no_bias(dtype) if bias is None else bias
    _launch_gemm(kernel, rows, weight, y, bias_arg, m, n, k, (0, 1, int(bias is not None)))
    return y.reshape(*tuple(x.shape)[:-1], n)


def linear_vjp(grad_y, weight):
    """``dL/dx[..., i] = sum_j dL/dy[..., j] * W[j, i]``.

    One tiled GEMM ``rows(dL/dy) @ W``. ``grad_y`` is ``(..., out)``, C-contiguous if it has more
    than two axes; returns a new ``(..., in)`` device array.
    """
    grad_y, weight = as_device(grad_y), as_device(weight)
    dtype = _check_dtype(grad_y, weight)
    rows = _rows(grad_y, "grad_y")
    m, k = rows.shape
    n = weight.shape[1]
    gx = cuda.device_array((m, n), dtype)
    kernel = _gemm_kernel(_load_2d, _load_2d_b, _store_2d, dtype)
    _launch_gemm(kernel, rows, weight, gx, _no_bias(dtype), m, n, k, (0, 0, 0))
    return gx.reshape(*tuple(grad_y.shape)[:-1], n)
