"""Perturbation curves: the explained output as more and more features, ranked by their
attribution, are replaced by an imputer (:mod:`npxai.metrics.imputers`), and the curve's summaries.

A curve of ``S`` steps perturbs, at step ``k``, the ``c_k`` features ranked first
(``0 = c_0 < c_1 < ... < c_S``): ``scores[n, k] = f(h_n(R_n < c_k))_t``, with ``R_n`` the ranks of
sample ``n``'s features (``0`` first) and ``h_n(S)`` the sample with the features in ``S``
replaced (*deletion*); an insertion curve starts from the imputed sample instead and puts back
the features ranked first, ``scores[n, k] = f(h_n(R_n >= c_k))_t``. Every row ``(n, k)`` is built
only when its batch goes through the model, from the ranks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..checks import positive_int
from .base import Inputs

#: The feature orders: most relevant first, least relevant first.
ORDERS = ("morf", "lerf")


@dataclass(frozen=True)
class PerturbationCurve:
    """A perturbation curve per sample and its summaries.

    - ``scores (N, S + 1)``: the explained output after each step; column ``0`` is before the
      first step (the input itself for a deletion curve, the fully imputed input for insertion);
    - ``fractions (S + 1,)``: the fraction ``c_k / M`` of the ``M`` features perturbed (deletion)
      or inserted (insertion) at each step, ``fractions[0] = 0``;
    - ``order``: ``"morf"`` or ``"lerf"``; ``summary``: the name of the per-sample score
      (``"auc"`` or ``"aopc"``), ``higher_is_better``: its direction;
    - ``auc (N,)``: the trapezoid area under the curve over ``fractions``,
      ``sum_k (p_{k+1} - p_k) (y_k + y_{k+1}) / 2``;
    - ``aopc (N,)``: Samek et al.'s area over the perturbation curve,
      ``1 / (S + 1) sum_{k=0}^{S} (y_0 - y_k)``;
    - ``score (N,)``: the summary named by ``summary``.
    """

    scores: np.ndarray
    fractions: np.ndarray
    order: str
    summary: str
    higher_is_better: bool

    @property
    def auc(self) -> np.ndarray:
        return np.trapezoid(self.scores, self.fractions, axis=1)

    @property
    def aopc(self) -> np.ndarray:
        return (self.scores[:, :1] - self.scores).mean(axis=1)

    @property
    def score(self) -> np.ndarray:
        return self.auc if self.summary == "auc" else self.aopc


def feature_ranks(values: np.ndarray, order: str) -> np.ndarray:
    """The rank (``0`` first, int32 where it fits) of each feature, ``values (N, M)`` the
    attribution per feature:
    ``"morf"`` descending, ties in index order (a stable sort); ``"lerf"`` that order reversed,
    so that the two orders are each other's mirror image also where values tie."""
    first = np.argsort(-values, axis=1, kind="stable")
    if order == "lerf":
        first = first[:, ::-1]
    ranks = np.empty(first.shape, dtype=np.int32 if values.shape[1] < 2**31 else np.int64)
    np.put_along_axis(ranks, first, np.arange(values.shape[1])[None], axis=1)
    return ranks


def check_step_rule(
    features_in_step: int | None, steps: int | None, owner: str
) -> tuple[int | None, int | None]:
    """``features_in_step`` and ``steps``, each ``None`` or a positive int, at most one given."""
    if features_in_step is not None and steps is not None:
        raise ValueError(f"{owner}: give features_in_step or steps, not both")
    if features_in_step is not None:
        features_in_step = positive_int(features_in_step, f"{owner}: features_in_step")
    if steps is not None:
        steps = positive_int(steps, f"{owner}: steps")
    return features_in_step, steps


def step_counts(
    n_features: int, features_in_step: int | None, steps: int | None, default_steps: int | None,
    owner: str,
) -> np.ndarray:  # fmt: skip
    """``c_0..c_S``, the features perturbed after each step, from ``features_in_step``
    (``c_k = min(k m, M)``, ``S = ceil(M / m)``) or ``steps`` (``c_k = floor(k M / S)``, at most
    ``M`` steps), as :func:`check_step_rule` returned them; neither: ``default_steps`` steps (at
    most ``M``), or one feature a step."""
    if features_in_step is not None:
        return np.minimum(
            np.arange(math.ceil(n_features / features_in_step) + 1) * features_in_step, n_features
        )
    if steps is None:
        steps = n_features if default_steps is None else min(default_steps, n_features)
    if steps > n_features:
        raise ValueError(
            f"{owner}: steps must be at most the number of features ({n_features}), got {steps}"
        )
    return np.arange(steps + 1) * n_features // steps


def perturbed_scores(
    inputs: Inputs,
    ranks: np.ndarray,
    counts: np.ndarray,
    impute: Callable[[np.ndarray, np.ndarray], np.ndarray],
    insertion: bool,
) -> np.ndarray:
    """``scores (N, S + 1)`` of the curve (see the module), ``ranks (N, *a)`` the rank of the
    feature of each entry (``a`` broadcasting to the sample shape), ``counts`` the ``c_k``,
    ``impute(samples, mask)`` the perturbed inputs (:func:`npxai.metrics.imputers.imputation`).
    The column that is ``x`` itself (``k = 0`` of a deletion curve, ``k = S`` of an insertion
    curve) is the explained output ``inputs.full``."""
    n, width = len(inputs.x), len(counts)
    unperturbed = width - 1 if insertion else 0
    columns = np.delete(np.arange(width), unperturbed)
    samples = np.repeat(np.arange(n), len(columns))
    steps = np.tile(columns, n)
    axes = (1,) * (ranks.ndim - 1)

    def make_rows(rows: np.ndarray) -> np.ndarray:
        m, k = samples[rows], steps[rows]
        replaced = ranks[m] < counts[k].reshape((len(rows),) + axes)
        if insertion:
            replaced = ~replaced
        return impute(m, replaced)

    scores = np.empty((n, width))
    scores[:, columns] = inputs.evaluate(make_rows, samples).reshape(n, len(columns))
    scores[:, unperturbed] = inputs.full
    return scores
