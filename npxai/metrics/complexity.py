"""Complexity metrics: how concentrated an attribution is, from the attribution alone.

Each takes the common call ``metric(model, x, attribution, target=None, ...)`` (see
:mod:`npxai.metrics.base`) and returns a float64 array ``(N,)``. The value needs the attribution
only: with ``model=None`` the model is not run (the attribution must then be given, not an
explainer); with a model it runs once on ``x`` (an explainer as the attribution runs once for
the targets). The *features* are the attribution's entries as given, ``n`` of them per sample:
a channel-summed map ``(N, 1, H, W)`` has ``n = H W`` (as Quantus, which does not broadcast it to
the input's channels here).

The metrics measure the magnitudes ``|a_i|``: the Gini index and the entropy are defined for
non-negative values only. Quantus's ``abs=False`` gives the same values for a non-negative
attribution; for one with a negative entry it gives NaN (entropy), a number that is not a Gini
index, or the count of the *positive* entries above the threshold (effective complexity). npxai
has no such option. Quantus's ``normalise`` divides the *whole batch* by its one largest ``|a|``
(``normalise_by_max`` over every axis), so a sample's value can depend on the others in the
batch; npxai's ``normalise=True`` divides each sample by its own largest ``|a_i|`` (Quantus's
with ``normalise_func_kwargs={"normalise_axes": <the sample axes>}``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analyzers.base import Target
from ..checks import finite_number, flag
from .base import Attribution, attribution_only

#: What Quantus adds to every normalised magnitude before the Gini index (its Sparseness).
GINI_EPSILON = 1e-7


def magnitudes(attribution: np.ndarray, normalise: bool) -> np.ndarray:
    """``|a|`` flattened per sample, ``(N, n)``; ``normalise=True``: divided by each sample's
    largest ``|a_i|`` (a sample of zeros is left as it is, as Quantus's ``normalise_by_max``)."""
    values = np.abs(attribution.reshape(len(attribution), -1))
    if normalise:
        peak = values.max(axis=1, keepdims=True)
        values = values / np.where(peak > 0, peak, 1.0)
    return values


def sparseness(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    normalise: bool = True,
    backend: str | None = None,
) -> np.ndarray:
    """The Gini index of the attribution's magnitudes (Chalasani et al. 2020; Quantus's
    ``Sparseness``): from 0 (all features equal) towards 1 (one feature holds everything).

    With ``v_i = |a_i| / max_j |a_j| + ε`` (``normalise=True``, the default, as Quantus; without
    the division for ``normalise=False``), ``ε = 1e-7`` (Quantus's; it makes an all-zero
    attribution's value 0) and ``v_(1) <= ... <= v_(n)`` sorted ascending::

        G = sum_i (2 i - n - 1) v_(i) / (n sum_i v_i)

    Since ``sum_i (2 i - n - 1) = 0`` the ``ε`` only enlarges the denominator: ``G`` is the exact
    Gini index ``G_0`` of ``|a|`` times ``S / (S + n ε)``, ``S = sum_i v_i - n ε`` (the sum of
    the normalised magnitudes). With ``normalise=True`` a one-hot attribution gives
    ``(n - 1) / (n (1 + n ε))``, a uniform one 0. Without the normalisation the factor depends
    on the attribution's scale (magnitudes of 1e-7 halve the value), which is why it is the
    default. Quantus normalises by the batch's largest ``|a|``, npxai by each sample's (see
    :mod:`npxai.metrics.complexity`): the two are the same for a batch of one, and otherwise
    Quantus's value is lower by at most a relative ``n ε / S_Q``, ``S_Q = sum_i |a_i| / (the
    batch's largest |a|)``.
    """
    normalise = flag(normalise, "sparseness: normalise")
    array = attribution_only("sparseness", model, x, attribution, target, backend)
    values = np.sort(magnitudes(array, normalise) + GINI_EPSILON, axis=1)
    n = values.shape[1]
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    return (values @ weights) / (n * values.sum(axis=1))


def complexity(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    backend: str | None = None,
) -> np.ndarray:
    """The entropy of the fractional contributions (Bhatt et al. 2020; Quantus's
    ``Complexity``): from 0 (one feature holds everything) to ``log n`` (all features equal).

    With ``p_i = |a_i| / sum_j |a_j|``::

        H = -sum_i p_i log p_i       (natural logarithm, 0 log 0 = 0)

    ``p`` does not change when the attribution is scaled, so there is no ``normalise`` option
    (Quantus's has no effect). Quantus takes ``log(p_i + 1e-12)``, which lowers the value by at
    most ``n 1e-12``. An all-zero attribution has no fractional contributions: ``ValueError``
    naming its samples (Quantus returns NaN).
    """
    array = attribution_only("complexity", model, x, attribution, target, backend)
    values = magnitudes(array, normalise=False)
    total = values.sum(axis=1, keepdims=True)
    zero = np.flatnonzero(total[:, 0] == 0)
    if len(zero):
        raise ValueError(
            f"complexity: the attribution of sample(s) {zero.tolist()[:10]} is all zero; its "
            "fractional contributions |a_i| / sum |a| are undefined"
        )
    p = values / total
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)


def effective_complexity(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    eps: float = 1e-5,
    normalise: bool = True,
    backend: str | None = None,
) -> np.ndarray:
    """The number of features whose magnitude exceeds ``eps`` (Nguyen and Rodríguez Martínez 2020;
    Quantus's ``EffectiveComplexity``, default ``eps=1e-5`` as Quantus)::

        C = #{i : v_i > eps},    v_i = |a_i| / max_j |a_j|   (|a_i| for normalise=False)

    as float64 (Quantus returns ints). Quantus normalises by the batch's largest ``|a|``, npxai
    by each sample's (see :mod:`npxai.metrics.complexity`); here that changes the counts of a
    sample whose largest magnitude is below the batch's.
    """
    eps = finite_number(eps, "effective_complexity: eps", minimum=0.0)
    normalise = flag(normalise, "effective_complexity: normalise")
    array = attribution_only("effective_complexity", model, x, attribution, target, backend)
    return (magnitudes(array, normalise) > eps).sum(axis=1).astype(np.float64)
