"""Localisation metrics: how well an attribution falls on a ground-truth region.

Each takes the common call ``metric(model, x, attribution, target=None, *, mask, ...)`` (see
:mod:`npxai.metrics.base`) and returns a float64 array ``(N,)``. The value needs the attribution
and the mask only: with ``model=None`` the model is not run (the attribution must then be given,
not an explainer); with a model it runs once on ``x``.

``mask`` (keyword-only, required; Quantus's ``s_batch``): a bool or 0/1 array ``(N, *m)`` whose
sample axes are the attribution's or 1, each sample with at least one positive entry. The
*features* are the attribution's entries; the mask is broadcast to them: a mask ``(N, 1, H, W)``
marks every channel of a pixel of an attribution ``(N, C, H, W)``, and a channel-summed
attribution ``(N, 1, H, W)`` takes a mask ``(N, 1, H, W)`` (one of ``(N, C, H, W)`` does not fit
it: sum or pool the attribution's channels, or the mask's, first). Quantus takes a mask
``(N, 1, H, W)`` only, and an attribution with as many entries (a channel-summed map, or a
one-channel input); it sums no channels. A mask of another shape, with entries other than 0 and
1, or without a positive entry in some sample is a ``ValueError`` naming ``mask`` (Quantus
returns NaN, or for the pointing game True, for an empty mask).

Quantus's ``normalise`` (default True: the batch divided by its largest ``|a|``) does not change
these values, which are invariant to a positive scale: npxai has no such option. ``abs=False``
(Quantus's default) scores the signed attribution, ``abs=True`` its magnitudes ``|a|``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analyzers.base import Target, to_numpy
from ..checks import flag, shown
from .base import Attribution, attribution_only, fits_per_sample


def features_and_mask(
    owner: str,
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target,
    mask: Any,
    abs: bool,
    backend: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The attribution (``|a|`` for ``abs=True``) and the mask broadcast to it, both flattened
    per sample: float64 and bool ``(N, n)``; ``ValueError`` naming ``mask`` if it does not fit,
    is not binary or has a sample without a positive entry."""
    abs = flag(abs, f"{owner}: abs")
    array = attribution_only(owner, model, x, attribution, target, backend)
    region = np.asarray(to_numpy(mask))
    if region.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: mask must be a bool or 0/1 array, got dtype {region.dtype}")
    if not fits_per_sample(region, array):
        raise ValueError(
            f"{owner}: mask of shape {region.shape} does not fit the attribution {array.shape}: "
            f"give ({len(array)}, {', '.join(map(str, array.shape[1:]))}) or sample axes of 1 "
            "(one mask for every channel)"
        )
    binary = np.isin(region, (0, 1))
    if not binary.all():
        raise ValueError(
            f"{owner}: mask must hold only 0 and 1 (or False and True), got "
            f"{shown(region[~binary][0].item())}"
        )
    region = np.broadcast_to(region.astype(bool), array.shape).reshape(len(array), -1)
    empty = np.flatnonzero(~region.any(axis=1))
    if len(empty):
        raise ValueError(
            f"{owner}: mask of sample(s) {empty.tolist()[:10]} has no positive entry; each "
            "sample needs a ground-truth region"
        )
    values = array.reshape(len(array), -1)
    return (np.abs(values) if abs else values), region


def pointing_game(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    mask: Any,
    abs: bool = False,
    weighted: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """Whether the attribution's largest entry lies in the mask (Zhang et al. 2018; Quantus's
    ``PointingGame``): 1.0 for a hit, 0.0 for a miss::

        hit = [argmax_i a_i in M]

    Ties count as a hit if any of the largest entries is in the mask (as Quantus). Zhang et al.
    also count a maximum within 15 pixels of the region: dilate the mask for that (Quantus and
    npxai test the mask itself). ``weighted=True`` scores a hit ``1 - |M| / n`` (a hit on a small
    region counts more; a miss 0), ``|M|`` the mask's entries of the ``n`` features: Quantus's
    documented intent (its 0.6.0 code raises a ``TypeError`` whenever a sample is hit).
    """
    weighted = flag(weighted, "pointing_game: weighted")
    values, region = features_and_mask(
        "pointing_game", model, x, attribution, target, mask, abs, backend
    )
    peak = values == values.max(axis=1, keepdims=True)
    hit = (peak & region).any(axis=1).astype(np.float64)
    if weighted:
        hit *= 1.0 - region.sum(axis=1) / region.shape[1]
    return hit


def relevance_mass_accuracy(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    mask: Any,
    abs: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """The share of the attribution inside the mask (Arras et al. 2022; Quantus's
    ``RelevanceMassAccuracy``)::

        R_mass = sum_{i in M} a_i / sum_i a_i

    over the signed entries (``abs=False``, Quantus's default: then the ratio need not lie in
    [0, 1]) or the magnitudes ``|a_i|`` (``abs=True``, in [0, 1]). A sample whose total
    ``sum_i a_i`` is 0 has no share: ``ValueError`` naming its samples (Quantus returns NaN or
    an infinity).
    """
    values, region = features_and_mask(
        "relevance_mass_accuracy", model, x, attribution, target, mask, abs, backend
    )
    total = values.sum(axis=1)
    zero = np.flatnonzero(total == 0)
    if len(zero):
        raise ValueError(
            f"relevance_mass_accuracy: the attribution of sample(s) {zero.tolist()[:10]} sums "
            "to 0; its share inside the mask is undefined"
        )
    return np.where(region, values, 0.0).sum(axis=1) / total


def relevance_rank_accuracy(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    mask: Any,
    abs: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """The fraction of the ``K = |M|`` largest entries that lie in the mask (Arras et al. 2022;
    Quantus's ``RelevanceRankAccuracy``), ``|M|`` the mask's entries::

        R_rank = |P_K ∩ M| / |M|,   P_K the K features of largest a_i

    (of largest ``|a_i|`` for ``abs=True``). Ties at the ``K``-th largest value go to the lower
    flat index (a stable sort); Quantus's ``np.argsort`` orders ties unspecifiedly.
    """
    values, region = features_and_mask(
        "relevance_rank_accuracy", model, x, attribution, target, mask, abs, backend
    )
    order = np.argsort(-values, axis=1, kind="stable")
    inside = np.cumsum(np.take_along_axis(region, order, axis=1), axis=1)
    size = region.sum(axis=1)
    return inside[np.arange(len(size)), size - 1] / size
