"""Faithfulness correlation (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model
Explanations"): how well the attribution summed over a random feature subset predicts the drop
of the explained output when that subset is replaced by a baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analyzers.base import Target
from ..checks import optional_seed, positive_int
from .base import Attribution, check_choice, prepare
from .imputers import check_imputer, imputation
from .similarity import pearson_rows, spearman

#: How the attribution sums and output drops of a sample's runs are correlated.
SIMILARITIES = {"pearson": pearson_rows, "spearman": spearman}


def faithfulness_correlation(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    nr_runs: int = 100,
    subset_size: int = 224,
    imputer: Any = "black",
    similarity: str = "pearson",
    seed: int | None = None,
    batch_size: int | None = None,
    softmax: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """Faithfulness correlation per sample, ``(N,)``::

        mu_F(f, g; x) = corr_{S in |S|-subsets of features} ( sum_{i in S} g(f, x)_i,
                                                              f(x) - f(x_{[x_S = x_bar_S]}) ),

    ``f`` the explained output (``softmax=True``: of the probabilities), ``g`` the attribution,
    ``x_bar`` the baseline, over ``nr_runs`` subsets ``S`` of ``subset_size`` features drawn
    uniformly without replacement. A feature is an attribution entry (a channel-summed map
    replaces every channel of a chosen pixel and counts its attribution once).

    ``imputer``: as for the perturbation curves (:mod:`npxai.metrics.imputers`): ``"black"`` (the
    sample's minimum, Quantus's default), ``"white"``, ``"mean"``, ``"blur"``, ``"uniform"``,
    ``"noisy_linear"``, a number, or ``imputer(x) -> values of x's shape``. ``similarity``:
    ``"pearson"`` (Quantus's default) or ``"spearman"`` (Pearson of the ranks, ties averaged); a
    constant series (e.g. an all-zero attribution) gives NaN.

    Draws: ``rng = np.random.default_rng(seed)``; the subset of run ``r`` of sample ``n`` is the
    ``(r * N + n)``-th call ``rng.choice(F, subset_size, replace=False)`` (run-major, Quantus's
    order of ``np.random.choice`` calls), ``F`` the attribution entries per sample. All runs of
    all samples run through the model ``batch_size`` rows per call.

    Defaults are Quantus 0.6.0's ``FaithfulnessCorrelation``; it equals Quantus's per-sample
    scores (``return_aggregate=False``) given the same subsets for an attribution of the input's
    shape (Quantus's ``normalise`` divides the attribution by its maximum magnitude, which leaves
    the correlation unchanged). Differences: Quantus draws entries of the attribution broadcast to
    the input's shape (so a channel-summed map's pixel may be replaced in some channels only, and
    counted once per channel) and requires ``subset_size`` below the number of *pixels*; here it
    must be below the number of features ``F`` (``F`` itself would draw the same subset every
    run), and ``nr_runs >= 2`` (a correlation needs two points).
    """
    owner = "faithfulness_correlation"
    nr_runs = positive_int(nr_runs, f"{owner}: nr_runs")
    if nr_runs < 2:
        raise ValueError(f"{owner}: nr_runs must be at least 2 (a correlation needs two points)")
    subset_size = positive_int(subset_size, f"{owner}: subset_size")
    correlate = SIMILARITIES[check_choice(similarity, tuple(SIMILARITIES), f"{owner}: similarity")]
    imputer = check_imputer(imputer, owner)
    seed = optional_seed(seed, f"{owner}: seed")
    inputs = prepare(
        owner,
        model,
        x,
        attribution,
        target,
        batch_size=batch_size,
        softmax=softmax,
        backend=backend,
    )
    x, attribution = inputs.x, inputs.attribution
    n, features = len(x), attribution[0].size
    if subset_size >= features:
        raise ValueError(
            f"{owner}: subset_size must be below the {features} features (attribution entries) "
            f"per sample, got {subset_size}"
        )
    flat = attribution.reshape(n, features)
    rng = np.random.default_rng(seed)
    impute = imputation(x, imputer, rng, owner)
    sums = np.empty(n * nr_runs)

    def make_rows(rows: np.ndarray) -> np.ndarray:
        samples = rows % n
        subsets = np.stack([rng.choice(features, subset_size, replace=False) for _ in rows])
        sums[rows] = np.take_along_axis(flat[samples], subsets, axis=1).sum(axis=1)
        mask = np.zeros((len(rows), features), bool)
        np.put_along_axis(mask, subsets, True, axis=1)
        mask = mask.reshape(len(rows), *attribution.shape[1:])
        return impute(samples, mask)

    samples = np.tile(np.arange(n), nr_runs)
    drops = inputs.full[samples] - inputs.evaluate(make_rows, samples)
    return correlate(sums.reshape(nr_runs, n).T, drops.reshape(nr_runs, n).T)
