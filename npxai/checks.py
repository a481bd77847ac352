"""Checks of public parameters, made where they enter (constructors): each returns the value in
its plain Python type or raises naming the parameter (``name``, e.g. ``"GammaRule: gamma"``), what
it takes and what it got (shown in at most a few dozen characters)."""

from __future__ import annotations

import math
import reprlib
from numbers import Integral, Real
from typing import Any

import numpy as np


def shown(value: Any) -> str:
    """``repr(value)``, shortened (a long string or a large array is cut with ``...``)."""
    return reprlib.repr(value)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an ``int`` if it is an integer ``>= 1`` (not a bool), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {shown(value)}")
    return int(value)


def finite_number(value: Any, name: str, minimum: float | None = None) -> float:
    """``value`` as a ``float`` if it is a finite real number (not a bool) and ``>= minimum``
    (when given), else ``ValueError``."""
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
    if not ok or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {shown(value)}")
    return float(value)


def flag(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (NumPy's bools too), else ``TypeError``."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {shown(value)}")
    return bool(value)


def optional_seed(value: Any, name: str) -> int | None:
    """``value`` as an ``int`` if it is an integer ``>= 0`` (not a bool), or ``None``; else
    ``ValueError``: a random generator's seed, ``np.random.default_rng(value)``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 or None, got {shown(value)}")
    return int(value)
