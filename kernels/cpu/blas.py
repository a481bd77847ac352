"""Dense products for the CPU kernels, on npxai's own threads with BLAS on one thread each.

NumPy's OpenBLAS runs a product on its own pool of threads, which then wait for the next one
spinning for a while; between products npxai's kernels run on Numba's TBB threads, and on a
machine with few cores the two pools take the cores from each other: on 2 cores the input
gradient of ResNet18 at batch 1 took 1.38x as long with OpenBLAS's pool as with the products split
as below, VGG16's 1.24x, and with another process busy too ResNet18's took 3x as long
(``python benchmarks/bench_threads.py`` times each setting in a process of its own). So
:func:`matmul` sets the OpenBLAS that NumPy loaded to one thread for the duration of a product
(``openblas_set_num_threads_local``, OpenBLAS 0.3.27 and later, returns the caller's setting,
which is restored afterwards; despite its name, in the pthreads build NumPy bundles the setting
holds for the whole process, so a NumPy product that another thread of the user's runs at that
moment runs on one thread too) and splits a large product into as many parts as Numba has
threads (``numba.get_num_threads()`` in the calling thread), one per thread: the calling thread
and the workers of a pool that sleep, not spin, between products. Where NumPy's BLAS is not an
OpenBLAS with that function (MKL, Accelerate, an older OpenBLAS), the products run as NumPy runs
them, on the BLAS's own threads; :data:`CONTROLLED` says which applies.
"""

import concurrent.futures
import ctypes
import glob
import os
import threading

import numba
import numpy as np

#: Multiply-adds below which OpenBLAS itself computes a product on one thread (its
#: ``interface/gemm.c``: ``m n k < SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD``, 65536 x 4):
#: such products go to NumPy as they are.
OPENBLAS_ONE_THREAD = 2**18

#: Multiply-adds from which a product is split between threads (below, handing a part to a
#: worker costs more than the split saves); between the two, one thread computes it.
SPLIT_MIN_MACS = 2**21


def _set_local_threads():
    """``openblas_set_num_threads_local`` of the OpenBLAS bundled with NumPy, or ``None``."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        return setter
    return None


_SETTER = _set_local_threads()
#: Whether npxai's products run with OpenBLAS on one thread per calling thread (see above).
CONTROLLED = _SETTER is not None
_pool: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None


def _workers() -> concurrent.futures.ThreadPoolExecutor:
    """The pool of this process (made at the first split product, again in a forked child,
    which inherits the pool but not its threads)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        workers = concurrent.futures.ThreadPoolExecutor(
            numba.config.NUMBA_NUM_THREADS - 1, "npxai-blas", initializer=lambda: _SETTER(1)
        )
        _pool = os.getpid(), workers
    return _pool[1]


def _edges(n: int, parts: int) -> list[int]:
    """Where ``parts`` near-equal pieces of ``range(n)`` start, and ``n``."""
    return [i * n // parts for i in range(parts + 1)]


def _parts(a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int) -> list[tuple]:
    """``(a, b, out)`` pieces whose products make ``a @ b`` into ``out``, one per thread: along a
    stack's leading axis when it has a piece for each, else along the larger of the rows of ``a``
    and the columns of ``b``."""
    if out.ndim == 3 and out.shape[0] >= threads:
        edges = _edges(out.shape[0], threads)
        take = lambda m, i: m[edges[i] : edges[i + 1]] if m.ndim == 3 else m  # noqa: E731
        return [(take(a, i), take(b, i), out[edges[i] : edges[i + 1]]) for i in range(threads)]
    rows, columns = out.shape[-2], out.shape[-1]
    if columns >= rows:
        edges = _edges(columns, threads)
        return [(a, b[..., edges[i] : edges[i + 1]], out[..., edges[i] : edges[i + 1]])
                for i in range(threads)]  # fmt: skip
    edges = _edges(rows, threads)
    return [(a[..., edges[i] : edges[i + 1], :], b, out[..., edges[i] : edges[i + 1], :])
            for i in range(threads)]  # fmt: skip


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` (2-D, or stacks of matrices), split between npxai's threads
    with BLAS on one thread each when :data:`CONTROLLED` (see the module's docstring)."""
    macs = max(a.size * b.shape[-1], b.size * a.shape[-2])
    if not CONTROLLED or macs < OPENBLAS_ONE_THREAD:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]),
                       np.result_type(a, b))  # fmt: skip
    _one_thread(+1)
    try:
        threads = numba.get_num_threads()  # the caller's (numba.set_num_threads)
        if threads == 1 or macs < SPLIT_MIN_MACS:
            return np.matmul(a, b, out=out)
        first, *rest = _parts(a, b, out, threads)
        futures = [_workers().submit(np.matmul, *part[:2], out=part[2]) for part in rest]
        np.matmul(*first[:2], out=first[2])
        for future in futures:
            future.result()
        return out
    finally:
        _one_thread(-1)


_lock = threading.Lock()
_users = 0  # products now running with OpenBLAS set to one thread
_previous = 1  # OpenBLAS's thread count before the first of them


def _one_thread(change: int) -> None:
    """The first of overlapping products (from several of the user's threads) sets OpenBLAS to
    one thread, the last restores what was set before."""
    global _users, _previous
    with _lock:
        if _users == 0:
            _previous = _SETTER(1)
        _users += change
        if _users == 0:
            _SETTER(_previous)
