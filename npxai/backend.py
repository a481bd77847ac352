"""Which implementation runs: ``"numpy"`` (the reference), ``"numba"`` (compiled CPU kernels,
the default) or ``"cuda"`` (numba.cuda kernels on an NVIDIA GPU; see :mod:`npxai.device` for
what crosses between host and device).

Every operation family has one module per backend, with the same file name and the same function
signatures: ``npxai/reference/conv.py``, ``kernels/cpu/conv.py`` (installed as
``npxai.kernels.cpu.conv``) and ``kernels/cuda/conv.py``. Nothing falls back: an unknown or
unavailable backend raises :class:`BackendError`. ``"cuda"`` needs the ``numba-cuda`` package
(``pip install "npxai[cuda]"``) and a GPU that ``numba.cuda.is_available()`` sees; under Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, the tests) it needs neither.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from types import ModuleType

from .errors import BackendError

BACKENDS = ("numpy", "numba", "cuda")
PACKAGES = {"numpy": "npxai.reference", "numba": "npxai.kernels.cpu", "cuda": "npxai.kernels.cuda"}

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


def implementation(family: str, backend: str) -> ModuleType:
    """The module implementing operation ``family`` (``"conv"``, ``"pool"``, ...) on ``backend``."""
    return importlib.import_module(f"{PACKAGES[backend]}.{family}")
