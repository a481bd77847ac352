"""Numba CPU kernels: ``@njit(cache=True)``, ``prange`` over independent planes or rows, float32 and
float64, any batch size. Dense products go to BLAS through NumPy's ``matmul``.

The kernels alternate with BLAS calls, and so do their thread pools. With Numba's OpenMP layer the
OpenMP threads keep spinning after each kernel and steal the cores from the next BLAS call; when
torch was imported first (its OpenMP runtime is then the one Numba binds to) ResNet18's forward
pass ran several times slower (the README gives the numbers and the command). TBB's workers yield, whatever was imported before, so npxai
runs its kernels on Numba's TBB layer (the ``tbb`` package is a dependency for this reason) unless
``NUMBA_THREADING_LAYER`` says otherwise.

Numba asks the dynamic loader for TBB by name (``libtbb.so.12``), and the loader does not search
``<environment>/lib``, where the ``tbb`` wheel puts it in a virtual environment, a conda
environment or a ``pip install --user``. So :func:`load_tbb` loads the library that pip installed
by its absolute path first; a library already loaded is found by name. If no TBB can be loaded,
importing this package raises :class:`~npxai.errors.BackendError` saying what to install; nothing
falls back to another threading layer. Numba starts its thread pool once, on the layer configured
then: if something started it on another layer before this package was imported (a call of
``numba.get_num_threads()`` is enough), importing it raises ``BackendError`` too.
"""

import ctypes
import importlib.metadata
import os
import sys

import numba

from ...errors import BackendError

#: The name under which Numba's TBB layer looks for the library, per platform.
TBB_LIBRARY = {"win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}.get(sys.platform, "libtbb.so.12")


def load_tbb() -> str:
    """Load TBB for Numba: the ``tbb`` package's own library by its absolute path, else whatever
    the dynamic loader finds by name. Returns what was loaded; raises ``BackendError`` if none."""
    tried = []
    try:
        found = [f.locate() for f in importlib.metadata.distribution("tbb").files or ()]
        tried = [str(path) for path in found if path.name == TBB_LIBRARY]
    except importlib.metadata.PackageNotFoundError:
        pass
    for candidate in [*tried, TBB_LIBRARY]:
        try:
            ctypes.CDLL(candidate, mode=ctypes.RTLD_GLOBAL)
            return candidate
        except OSError:
            continue
    where = f" (tried {', '.join(tried)})" if tried else " (the tbb package is not installed)"
    raise BackendError(
        f"npxai's numba backend runs on Intel TBB, and {TBB_LIBRARY} could not be loaded{where}: "
        "install it with 'pip install tbb', or use backend='numpy'"
    )


def started_layer() -> str | None:
    """The threading layer Numba's thread pool already runs on, ``None`` if it has not started
    (it starts at the first parallel kernel or ``numba.get_num_threads()``, with the layer that
    ``numba.config.THREADING_LAYER`` names then)."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


if "NUMBA_THREADING_LAYER" not in os.environ:
    running = started_layer()
    if running not in (None, "tbb"):
        raise BackendError(
            f"Numba's threads already run on its {running!r} layer, started before npxai's "
            "kernels were imported (by numba.get_num_threads() or another parallel function); "
            "npxai's kernels run on TBB: import npxai.kernels.cpu first, or set "
            "NUMBA_THREADING_LAYER to choose the layer yourself"
        )
    numba.config.THREADING_LAYER = "tbb"
if numba.config.THREADING_LAYER == "tbb":
    load_tbb()
