"""Which implementation runs: ``"numpy"`` (the reference), ``"numba"`` (compiled CPU kernels, the
default) or ``"cuda"`` (numba.cuda kernels on an NVIDIA GPU; see :mod:`npxai.device` for what
crosses between host and device).

Every operation family has one module per backend, with the same file name and the same function
signatures: ``npxai/reference/conv.py``, ``kernels/cpu/conv.py`` (installed as
``npxai.kernels.cpu.conv``) and ``kernels/cuda/conv.py``. :func:`backend_modules` is the one
table from a backend to its modules: a layer calls
``backend_modules(backend).conv.conv2d(...)``. Nothing falls back: an unknown or unavailable
backend raises :class:`BackendError`. ``"cuda"`` needs the ``numba-cuda`` package (``pip install
"npxai[cuda]"``) and a GPU that ``numba.cuda.is_available()`` sees; under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, the tests) it needs neither.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from .errors import BackendError

BACKENDS = ("numpy", "numba", "cuda")

_default: ContextVar[str] = ContextVar("npxai_backend", default="numba")


def check_backend(name: str) -> str:
    """Return ``name`` if it is a backend that can run here, else raise :class:`BackendError`."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "cuda" and (missing := cuda_missing()):
        raise BackendError(
            f"backend 'cuda' is not available: {' and '.join(missing)}; "
            "use backend='numba' or backend='numpy'"
        )
    return name


@cache
def cuda_missing() -> tuple[str, ...]:
    """What the cuda backend lacks here (empty when it can run); asked once per process."""
    from numba import config

    if config.ENABLE_CUDASIM:
        return ()  # Numba's CUDA simulator runs the kernels on the CPU (the tests)
    missing = []
    if importlib.util.find_spec("numba_cuda") is None:
        missing.append(
            'the numba-cuda package is not installed (pip install "npxai[cuda]"; '
            'pip install "numba-cuda[cu13]" for a CUDA 13 driver)'
        )
    from numba import cuda

    if not cuda.is_available():
        missing.append(
            "no CUDA GPU is usable (numba.cuda.is_available() is False; numba.cuda.detect() "
            "says why)"
        )
    return tuple(missing)


def backend_or_default(name: str | None) -> str:
    """``name`` checked, or the current default when ``name`` is ``None``."""
    return _default.get() if name is None else check_backend(name)


def get_backend() -> str:
    """The process-wide default backend (``"numba"`` unless changed)."""
    return _default.get()


def set_backend(name: str) -> None:
    """Set the default backend for every later computation in this context."""
    _default.set(check_backend(name))


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """``with npxai.use_backend("numpy"): ...`` runs the block with another default backend."""
    token = _default.set(check_backend(name))
    try:
        yield
    finally:
        _default.reset(token)


@dataclass(frozen=True)
class BackendModules:
    """One backend's modules, one per operation family, each with the functions of its twins."""

    activation: ModuleType
    conv: ModuleType
    linear: ModuleType
    lrp: ModuleType
    norm: ModuleType
    pool: ModuleType


@cache
def backend_modules(backend: str) -> BackendModules:
    """The modules of ``backend``, imported when it is first used: ``"numpy"`` runs
    ``npxai/reference/<family>.py``, ``"numba"`` ``kernels/cpu/<family>.py`` and ``"cuda"``
    ``kernels/cuda/<family>.py``."""
    if backend == "numpy":
        from .reference import activation, conv, linear, lrp, norm, pool
    elif backend == "numba":
        from .kernels.cpu import activation, conv, linear, lrp, norm, pool
    elif backend == "cuda":
        from .kernels.cuda import activation, conv, linear, lrp, norm, pool
    else:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return BackendModules(activation, conv, linear, lrp, norm, pool)
