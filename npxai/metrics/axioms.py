"""Axiomatic metrics: properties an attribution method should have by construction.

:func:`completeness` takes the common call ``metric(model, x, attribution, target=None, ...)``
(see :mod:`npxai.metrics.base`) and returns a float64 array ``(N,)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analyzers.base import Target
from ..analyzers.perturbation import broadcast_baselines, check_baselines
from ..checks import finite_number
from .base import Attribution, prepare

#: The baselines named after a statistic of each sample (Quantus's perturb_baseline names).
SAMPLE_BASELINES = {"black": np.min, "white": np.max, "mean": np.mean}


def baseline_input(baselines: Any, x: np.ndarray) -> np.ndarray:
    """The baseline input ``x0`` (``x``'s shape and dtype) that ``baselines`` names: a number, an
    array broadcasting to ``x`` (a sample's shape or the batch's), or ``"black"`` / ``"white"`` /
    ``"mean"``: every entry the sample's smallest / largest / mean entry (Quantus's)."""
    if isinstance(baselines, str):
        if baselines not in SAMPLE_BASELINES:
            raise ValueError(
                "completeness: baselines must be a number, an array or one of 'black', 'white', "
                f"'mean', got {baselines!r}"
            )
        statistic = SAMPLE_BASELINES[baselines](x.reshape(len(x), -1), axis=1)
        return np.broadcast_to(statistic.reshape(-1, *[1] * (x.ndim - 1)), x.shape).astype(x.dtype)
    return broadcast_baselines(check_baselines(baselines, "completeness"), x, "completeness")


def completeness(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    baselines: Any = 0.0,
    tolerance: float | None = None,
    softmax: bool = False,
    batch_size: int | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """How far the attribution's sum is from the output's change from the baseline
    (Sundararajan et al. 2017, the completeness axiom; Quantus's ``Completeness``).

    For each sample, with ``f`` the explained output (the target's score; with
    ``softmax=True`` its probability) and ``x0`` the baseline input::

        gap = sum_i a_i - (f(x) - f(x0))

    summed over the attribution's entries as given (a channel-summed map's ``H W``, as Quantus).
    ``tolerance=None`` (the default) returns the gap itself (0 for a complete attribution, such
    as Integrated Gradients' in the limit of many steps, or ``w * x`` of a linear model
    ``f(x) = w . x + b`` with ``x0 = 0``); ``tolerance=t`` returns ``|gap| <= t`` as 1.0 or 0.0
    (Quantus's boolean is ``tolerance=0.0``, an exact equality, false for nearly any attribution
    computed in floating point). The differences are taken in float64.

    ``baselines`` (as Integrated Gradients' of npxai): a number (default 0.0, the paper's black
    image), an array broadcasting to ``x``, or ``"black"`` / ``"white"`` / ``"mean"``, the
    sample's smallest / largest / mean entry everywhere (Quantus's ``perturb_baseline``, default
    ``"black"``). ``f(x0)`` runs in batches of ``batch_size``.

    Differences from Quantus: Quantus's defaults ``normalise=True`` (the attribution divided by
    the batch's largest ``|a|`` before it is summed, which breaks the comparison with the output)
    and its ``abs`` and ``output_func`` options are not offered: compare with Quantus's
    ``normalise=False``.
    """
    if tolerance is not None:
        tolerance = finite_number(tolerance, "completeness: tolerance", minimum=0.0)
    inputs = prepare("completeness", model, x, attribution, target, batch_size, softmax, backend)
    baseline = baseline_input(baselines, inputs.x)
    samples = np.arange(len(inputs.x))
    change = inputs.full - inputs.evaluate(lambda rows: baseline[rows], samples)
    gap = inputs.attribution.reshape(len(samples), -1).sum(axis=1) - change
    if tolerance is None:
        return gap
    return (np.abs(gap) <= tolerance).astype(np.float64)
