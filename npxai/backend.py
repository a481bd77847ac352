"""Which implementation runs: ``"numpy"`` (the reference), ``"numba"`` (compiled CPU kernels,
the default) or ``"cuda"`` (numba.cuda kernels: being built in ``kernels/cuda``, not wired to
the layers yet, so the backend raises).

Every operation family has one module per backend, with the same file name and the same function
signatures: ``npxai/reference/conv.py``, ``kernels/cpu/conv.py`` (installed as
``npxai.kernels.cpu.conv``) and, later, ``kernels/cuda/conv.py``. Nothing falls back: an unknown
or unavailable backend raises :class:`BackendError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType

BACKENDS = ("numpy", "numba", "cuda")
PACKAGES = {"numpy": "npxai.reference", "numba": "npxai.kernels.cpu"}

_default: ContextVar[str] = ContextVar("npxai_backend", default="numba")


class BackendError(ValueError):
    """An unknown backend, or one that cannot run here."""


def check_backend(name: str) -> str:
    """Return ``name`` if it is a backend that can run here, else raise :class:`BackendError`."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "cuda":
        raise BackendError(
            "backend 'cuda' is not available: npxai's CUDA kernels (kernels/cuda) are not "
            "wired to the layers and analyzers yet (the CUDA issue); use backend='numba' or "
            "backend='numpy'"
        )
    return name


def resolve(name: str | None) -> str:
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
