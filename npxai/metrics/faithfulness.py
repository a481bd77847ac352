"""Perturbation-curve faithfulness metrics: pixel flipping, region perturbation, deletion,
insertion and the symmetric relevance gain. Each perturbs the features of ``x`` in the order of
their attribution (see :mod:`npxai.metrics.base` for the shared arguments, :mod:`npxai.metrics.
curves` for the curve and its summaries, :mod:`npxai.metrics.imputers` for ``imputer``) and runs
all perturbed inputs of all samples through the model ``batch_size`` rows per call. The random
imputer (``"uniform"``) draws from ``np.random.default_rng(seed)``.

The features are the attribution's entries: a channel-summed map ``(N, 1, H, W)`` of images
``(N, C, H, W)`` flips whole pixels (all channels at once), a map of ``x``'s shape single entries.
Quantus broadcasts the attribution to ``x``'s shape and flips entries, so that a channel-summed
map gives ``C`` tied entries per pixel; with ``features_in_step = C m`` its curve is ours with
``features_in_step = m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analyzers.base import Target
from ..checks import optional_seed, positive_int, shown
from .base import Inputs, check_choice, prepare
from .curves import (
    ORDERS,
    PerturbationCurve,
    check_step_rule,
    feature_ranks,
    perturbed_scores,
    step_counts,
)
from .imputers import check_imputer, imputation

#: The step count of deletion, insertion and the symmetric relevance gain when neither
#: ``features_in_step`` nor ``steps`` is given.
DEFAULT_STEPS = 100


def _feature_curve(
    inputs: Inputs, features_in_step: int | None, steps: int | None, default_steps: int | None,
    order: str, imputer: Any, seed: int | None, insertion: bool,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The scores and fractions of a curve over the attribution's entries."""
    attribution = inputs.attribution
    values = attribution.reshape(len(attribution), -1)
    counts = step_counts(values.shape[1], features_in_step, steps, default_steps, inputs.owner)
    ranks = feature_ranks(values, order).reshape(attribution.shape)
    impute = imputation(inputs.x, imputer, np.random.default_rng(seed), inputs.owner)
    scores = perturbed_scores(inputs, ranks, counts, impute, insertion)
    return scores, counts / values.shape[1]


def _prepare(
    owner: str, model: Any, x: Any, attribution: Any, target: Target, order: str, imputer: Any,
    seed: Any, batch_size: int, softmax: bool, backend: str | None,
) -> tuple[Inputs, Any, int | None]:  # fmt: skip
    """The common checks (``order``, ``imputer``, ``seed`` before the model runs), then
    :func:`npxai.metrics.base.prepare`."""
    check_choice(order, ORDERS, f"{owner}: order")
    imputer = check_imputer(imputer, owner)
    seed = optional_seed(seed, f"{owner}: seed")
    inputs = prepare(owner, model, x, attribution, target, batch_size, softmax, backend)
    return inputs, imputer, seed


def pixel_flipping(
    model: Any, x: Any, attribution: Any, target: Target = None, *,
    features_in_step: int | None = None, steps: int | None = None, order: str = "morf",
    imputer: Any = "black", seed: int | None = 0, batch_size: int | None = None, softmax: bool = True,
    backend: str | None = None,
) -> PerturbationCurve:  # fmt: skip
    """Pixel flipping (Bach et al. 2015; Quantus ``PixelFlipping``): the features sorted by
    attribution (``order="morf"``: descending, the most relevant first; ``"lerf"``: ascending),
    replaced by ``imputer`` ``features_in_step`` at a time, cumulatively, and the explained output
    after each step, ``y_k = f(h(R < c_k))_t`` (:mod:`npxai.metrics.curves`). The step size:
    ``features_in_step`` (``c_k = min(k m, M)``, the last step smaller where ``m`` does not divide
    the feature count ``M``), or ``steps`` (``c_k = floor(k M / S)``); neither: one feature a step
    (Quantus's default ``features_in_step=1``). Defaults: ``imputer="black"`` (Quantus's),
    ``softmax=True`` (Quantus's).

    Returns a :class:`PerturbationCurve`; its score is the AUC over the fraction of features
    flipped, lower is better for ``"morf"``, higher for ``"lerf"``.

    Differences from Quantus 0.6.0: the curve starts with the unperturbed input (column 0,
    Quantus's starts after the first step) and its AUC is over the fraction of features, from 0
    to 1 (Quantus's ``np.trapz(curve, dx=1)`` is over the step number, from step 1); the features
    are the attribution's entries (above); Quantus has no ``"lerf"`` (its flipping order is
    descending only, that of ``-attribution`` here); Quantus requires ``features_in_step`` to
    divide the product of the axes after the first two of ``x``; its ``"mean"`` and
    ``"uniform"`` differ (:mod:`npxai.metrics.imputers`). Ties: a stable sort (Quantus's
    ``np.argsort`` is not stable).
    """
    owner = "pixel_flipping"
    features_in_step, steps = check_step_rule(features_in_step, steps, owner)
    inputs, imputer, seed = _prepare(owner, model, x, attribution, target, order, imputer, seed,
                                     batch_size, softmax, backend)  # fmt: skip
    scores, fractions = _feature_curve(inputs, features_in_step, steps, None, order, imputer, seed,
                                       insertion=False)  # fmt: skip
    return PerturbationCurve(scores, fractions, order, "auc", order == "lerf")


def deletion(
    model: Any, x: Any, attribution: Any, target: Target = None, *,
    features_in_step: int | None = None, steps: int | None = None, imputer: Any = 0.0,
    seed: int | None = 0, batch_size: int | None = None, softmax: bool = True, backend: str | None = None,
) -> PerturbationCurve:  # fmt: skip
    """Petsiuk et al.'s (2018, RISE) deletion: the most relevant features first replaced by
    ``imputer`` (default the constant 0, RISE's), cumulatively, ``y_k = f(h(R < c_k))_t``; the
    same curve as :func:`pixel_flipping` with ``order="morf"``, other defaults: ``steps`` 100
    (:data:`DEFAULT_STEPS`, at most the feature count) unless ``features_in_step`` or ``steps``
    is given, ``softmax=True`` (RISE's class probability).

    Returns a :class:`PerturbationCurve`; its score is the AUC over the fraction of features
    deleted (0 to 1, RISE's), lower is better.
    """
    owner = "deletion"
    features_in_step, steps = check_step_rule(features_in_step, steps, owner)
    inputs, imputer, seed = _prepare(owner, model, x, attribution, target, "morf", imputer, seed,
                                     batch_size, softmax, backend)  # fmt: skip
    scores, fractions = _feature_curve(inputs, features_in_step, steps, DEFAULT_STEPS, "morf",
                                       imputer, seed, insertion=False)  # fmt: skip
    return PerturbationCurve(scores, fractions, "morf", "auc", False)


def insertion(
    model: Any, x: Any, attribution: Any, target: Target = None, *,
    features_in_step: int | None = None, steps: int | None = None, imputer: Any = "blur",
    seed: int | None = 0, batch_size: int | None = None, softmax: bool = True, backend: str | None = None,
) -> PerturbationCurve:  # fmt: skip
    """Petsiuk et al.'s (2018, RISE) insertion: the curve starts from the input with every
    feature replaced by ``imputer`` (default ``"blur"``, RISE's blurred image) and puts the most
    relevant features back first, ``y_k = f(h(R >= c_k))_t``: ``y_0`` is the fully imputed
    input, ``y_S`` the input itself. Steps as :func:`deletion` (default 100), ``softmax=True``.

    Returns a :class:`PerturbationCurve` (``fractions``: the fraction of features inserted);
    its score is the AUC over that fraction (0 to 1), higher is better. RISE's blur differs in
    its kernel and border (:mod:`npxai.metrics.imputers`).
    """
    owner = "insertion"
    features_in_step, steps = check_step_rule(features_in_step, steps, owner)
    inputs, imputer, seed = _prepare(owner, model, x, attribution, target, "morf", imputer, seed,
                                     batch_size, softmax, backend)  # fmt: skip
    scores, fractions = _feature_curve(inputs, features_in_step, steps, DEFAULT_STEPS, "morf",
                                       imputer, seed, insertion=True)  # fmt: skip
    return PerturbationCurve(scores, fractions, "morf", "auc", True)


@dataclass(frozen=True)
class RelevanceGain:
    """The two curves of :func:`symmetric_relevance_gain` and ``score (N,)``, their SRG
    ``AUC(lerf) - AUC(morf)`` (higher is better)."""

    morf: PerturbationCurve
    lerf: PerturbationCurve
    higher_is_better = True

    @property
    def score(self) -> np.ndarray:
        return self.lerf.auc - self.morf.auc


def symmetric_relevance_gain(
    model: Any, x: Any, attribution: Any, target: Target = None, *,
    features_in_step: int | None = None, steps: int | None = None, imputer: Any = "mean",
    seed: int | None = 0, batch_size: int | None = None, softmax: bool = True, backend: str | None = None,
) -> RelevanceGain:  # fmt: skip
    """Blücher et al.'s (2024) symmetric relevance gain: two pixel-flipping curves of the same
    imputer, most relevant first (MIF, ``"morf"``) and least relevant first (LIF, ``"lerf"``,
    the exact reverse order), and ``SRG = AUC(LIF) - AUC(MIF)``, each AUC the trapezoid over the
    fraction of features removed, 0 to 1. (Blücher et al. write it as the sum of the two relevance
    gains ``AUC(random) - AUC(MIF)`` and ``AUC(LIF) - AUC(random)``, in which the random order's
    AUC cancels.) Both curves share their end points (the input and the fully imputed input).
    Steps as :func:`deletion` (default 100); ``imputer="mean"`` (the sample's mean, see
    :mod:`npxai.metrics.imputers`; the paper compares many imputers, the train-set mean among
    them); ``softmax=True``.

    Returns a :class:`RelevanceGain`: both curves, and the SRG per sample as ``score`` (higher is
    better; 0 in expectation for a random attribution).
    """
    owner = "symmetric_relevance_gain"
    features_in_step, steps = check_step_rule(features_in_step, steps, owner)
    inputs, imputer, seed = _prepare(owner, model, x, attribution, target, "morf", imputer, seed,
                                     batch_size, softmax, backend)  # fmt: skip
    curves = []
    for order in ORDERS:
        scores, fractions = _feature_curve(inputs, features_in_step, steps, DEFAULT_STEPS, order,
                                           imputer, seed, insertion=False)  # fmt: skip
        curves.append(PerturbationCurve(scores, fractions, order, "auc", order == "lerf"))
    return RelevanceGain(*curves)


def _patch_shape(patch_size: Any, spatial: tuple[int, ...], owner: str) -> tuple[int, ...]:
    sizes = (patch_size,) * len(spatial) if not isinstance(patch_size, tuple) else patch_size
    if len(sizes) != len(spatial):
        raise ValueError(
            f"{owner}: patch_size must be an int or one int per spatial axis ({len(spatial)}), "
            f"got {shown(patch_size)}"
        )
    sizes = tuple(positive_int(p, f"{owner}: patch_size") for p in sizes)
    if any(d % p for d, p in zip(spatial, sizes, strict=True)):
        raise ValueError(
            f"{owner}: patch_size {shown(patch_size)} does not tile the input's spatial shape "
            f"{spatial}: each spatial size must be a multiple of the patch size"
        )
    return sizes


def region_perturbation(
    model: Any, x: Any, attribution: Any, target: Target = None, *, patch_size: Any = 8,
    regions_evaluation: int = 100, order: str = "morf", imputer: Any = "uniform",
    seed: int | None = 0, batch_size: int | None = None, softmax: bool = True, backend: str | None = None,
) -> PerturbationCurve:  # fmt: skip
    """Region perturbation (Samek et al. 2016; Quantus ``RegionPerturbation``): the input
    ``(N, C, *spatial)`` cut into non-overlapping patches of ``patch_size`` (an int, or one per
    spatial axis; it must tile the spatial axes), numbered in raster order; each patch's score
    the sum of the attribution over it (all channels); the patches ranked by it (``"morf"``:
    descending, ``"lerf"``: ascending); the first ``L = min(regions_evaluation, P)`` of the ``P``
    patches replaced by ``imputer`` one at a time, cumulatively (every channel of the patch), and
    the explained output after each, ``y_0 = f(x)_t, ..., y_L``. Defaults: ``patch_size=8``,
    ``regions_evaluation=100`` (Quantus's), ``imputer="uniform"`` (Samek et al.'s uniform noise
    on ``[0, 1)``; Quantus 0.6.0's default is ``"black"``), ``softmax=True``.

    Returns a :class:`PerturbationCurve` (``fractions``: the fraction of the input's entries
    perturbed, ``k / P``); its score is Samek et al.'s AOPC,
    ``1 / (L + 1) sum_{k=0}^{L} (y_0 - y_k)``, higher is better for ``"morf"``, lower for
    ``"lerf"``.

    Differences from Quantus 0.6.0: Quantus's curve holds ``y_0 - y_k`` for ``k = 1..L`` and it
    computes no AOPC; a patch size that does not tile the input is an error here, where Quantus
    pads ``x`` (edge values) and the attribution (zeros), centring the input, and perturbs the
    patches that overlap the border only inside the input; Quantus's ``"uniform"`` is one draw
    per sample and patch, shared by the patch's entries (here one per entry); a channel-summed
    attribution scores a patch by its sum here, ``C`` times it in Quantus (the same ranking).
    Ties: a stable sort, ``"lerf"`` the reverse of ``"morf"`` (Quantus's ``np.argsort`` is not
    stable).
    """
    owner = "region_perturbation"
    regions_evaluation = positive_int(regions_evaluation, f"{owner}: regions_evaluation")
    inputs, imputer, seed = _prepare(owner, model, x, attribution, target, order, imputer, seed,
                                     batch_size, softmax, backend)  # fmt: skip
    x, attribution = inputs.x, inputs.attribution
    spatial = x.shape[2:]
    if not spatial or attribution.shape[2:] != spatial:
        raise ValueError(
            f"{owner}: needs inputs (N, C, *spatial) and an attribution (N, C or 1, *spatial) of "
            f"the same spatial shape, got x {x.shape} and attribution {attribution.shape}"
        )
    sizes = _patch_shape(patch_size, spatial, owner)
    grid = tuple(d // p for d, p in zip(spatial, sizes, strict=True))
    blocks = attribution.sum(axis=1).reshape((len(x),) + sum(zip(grid, sizes, strict=True), ()))
    sums = blocks.sum(axis=tuple(range(2, 2 * len(grid) + 1, 2))).reshape(len(x), -1)
    ranks = feature_ranks(sums, order).reshape((len(x),) + grid)
    for axis, size in enumerate(sizes):
        ranks = np.repeat(ranks, size, axis=axis + 1)
    counts = np.arange(min(regions_evaluation, sums.shape[1]) + 1)
    impute = imputation(x, imputer, np.random.default_rng(seed), owner)
    scores = perturbed_scores(inputs, ranks[:, None], counts, impute, insertion=False)
    return PerturbationCurve(scores, counts / sums.shape[1], order, "aopc", order == "morf")
