"""Shapley values of the features of a sample (Shapley 1953; Lundberg and Lee 2017; Strumbelj and
Kononenko 2010, 2014): exactly, by permutation sampling, or by the Kernel SHAP regression.

The game is ``v(S)``, the explained output with the features outside ``S`` at the baseline
(:mod:`npxai.analyzers.perturbation`); features ``1..M`` as in :mod:`npxai.analyzers.features`
(every entry by default, Captum's). The Shapley value of feature ``i``::

    phi_i = sum_{S not containing i} |S|! (M - |S| - 1)! / M! (v(S + i) - v(S))
          = E_pi [v(Pre_i(pi) + i) - v(Pre_i(pi))]

``Pre_i(pi)`` the features before ``i`` in a uniformly random permutation ``pi``. They are
efficient (``sum_i phi_i = v(all) - v(none) = f(x)_t - f(b)_t``), symmetric, and zero for a
feature that changes no ``v(S)``. Every entry's attribution is its feature's ``phi_i``
(Captum's convention). Values are combined in float64 and returned in the input's dtype.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..checks import flag, optional_seed, positive_int, shown
from .base import Target, reject
from .features import FeatureMask
from .perturbation import Game, PerturbationAnalyzer


class ShapleyValues(PerturbationAnalyzer):
    """Exact Shapley values by the subset formula (see :mod:`npxai.analyzers.shapley`), all
    ``2^M - 2`` coalitions besides the full and the empty one evaluated, as Captum's
    ``ShapleyValues`` (which averages over all ``M!`` permutations: the same sum). More than 16
    features in a sample (:attr:`max_features`) is a :class:`~npxai.errors.TooManyFeaturesError`
    (give a ``feature_mask`` of fewer, or use :class:`ShapleyValueSampling` or
    :class:`KernelSHAP`)."""

    #: The most features exact Shapley values take (``2^16 - 2`` model evaluations per sample).
    max_features = (16, "whose 2^M coalitions exact Shapley values enumerate (use "
                    "ShapleyValueSampling or KernelSHAP for more)")  # fmt: skip

    def __init__(
        self,
        model: Any,
        feature_mask: FeatureMask = None,
        baselines: float | np.ndarray = 0.0,
        batch_size: int = 64,
        backend: str | None = None,
    ):
        super().__init__(model, feature_mask, baselines, batch_size, backend)

    def feature_attribution(self, game: Game) -> tuple[np.ndarray, dict[str, Any]]:
        tables = [np.arange(2**m)[:, None] >> np.arange(m) & 1 for m in game.counts]
        values = game.values([table[1:-1] for table in tables])
        phi = np.zeros((len(tables), int(game.counts.max())))
        for n, table in enumerate(tables):
            v = np.concatenate([[game.empty[n]], values[n], [game.full[n]]])  # v[c]: S of bits c
            m, size = table.shape[1], table.sum(axis=1)
            # |S|! (M - |S| - 1)! / M! = 1 / (M C(M - 1, |S|)), by the size of S
            weight = 1.0 / (m * np.array([math.comb(m - 1, s) for s in range(m)]))
            for i in range(m):
                without = np.flatnonzero(table[:, i] == 0)  # S not containing i; S + i = S | 2^i
                phi[n, i] = weight[size[without]] @ (v[without + 2**i] - v[without])
        return phi, {}

    def attribute(
        self,
        inputs: Any,
        target: Target = None,
        baselines: Any = None,
        feature_mask: Any = None,
        perturbations_per_eval: int | None = None,
        **captum_args: Any,
    ) -> np.ndarray:
        """Captum's ``ShapleyValues(model).attribute(inputs, target=..., baselines=...,
        feature_mask=..., perturbations_per_eval=...)`` (see
        :meth:`~npxai.analyzers.perturbation.PerturbationAnalyzer.explain_with`)."""
        reject("ShapleyValues", captum_args)
        return self.explain_with(
            inputs, target, baselines, feature_mask, perturbations_per_eval
        ).attribution


class ShapleyValueSampling(PerturbationAnalyzer):
    """Shapley values estimated from ``n_samples`` random permutations per sample (Strumbelj
    and Kononenko; Captum's ``ShapleyValueSampling``): along each permutation the features are
    switched from the baseline to the sample one by one and each is credited with the change of
    ``v``; ``phi_i`` is the mean over the permutations. The permutations are
    ``np.random.default_rng(seed).permutation(M)``, ``n_samples`` of them per sample in batch
    order; ``antithetic=True`` makes every second one the reverse of the one before (Mitchell et
    al. 2022). Each permutation costs ``M - 1`` evaluations (``v(none)`` and ``v(all)`` are
    shared; Captum evaluates ``M`` per permutation). Every permutation's credits sum to ``v(all)
    - v(none)``, so the estimate is efficient."""

    def __init__(
        self,
        model: Any,
        n_samples: int = 25,
        feature_mask: FeatureMask = None,
        baselines: float | np.ndarray = 0.0,
        antithetic: bool = False,
        seed: int | None = None,
        batch_size: int = 64,
        backend: str | None = None,
    ):
        super().__init__(model, feature_mask, baselines, batch_size, backend)
        self.n_samples = positive_int(n_samples, "ShapleyValueSampling: n_samples")
        self.antithetic = flag(antithetic, "ShapleyValueSampling: antithetic")
        self.seed = optional_seed(seed, "ShapleyValueSampling: seed")

    def permutations(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """One sample's permutations ``(n_samples, m)``."""
        if not self.antithetic:
            return np.array([rng.permutation(m) for _ in range(self.n_samples)])
        drawn = [rng.permutation(m) for _ in range(-(-self.n_samples // 2))]
        return np.array([p[::-1] if k % 2 else p for p in drawn for k in (0, 1)][: self.n_samples])

    def feature_attribution(self, game: Game) -> tuple[np.ndarray, dict[str, Any]]:
        rng = np.random.default_rng(self.seed)
        phi = np.zeros((len(game.counts), int(game.counts.max())))
        for n, m in enumerate(game.counts):
            order = self.permutations(rng, int(m))
            rank = np.empty_like(order)  # rank[p, i]: the position of feature i in permutation p
            np.put_along_axis(rank, order, np.arange(m)[None], axis=1)
            # the coalitions of the first k features, k = 1..m-1, for as many permutations at a
            # time as fill a model call (the coalitions of all of them could fill the memory)
            group = max(1, -(-self.batch_size // max(int(m) - 1, 1)))
            for start in range(0, len(rank), group):
                ranks = rank[start : start + group]
                first = (ranks[:, None] < np.arange(1, m)[:, None]).reshape(-1, m)
                inner = game(np.full(len(first), n), first).reshape(len(ranks), m - 1)
                v = np.hstack([np.full((len(ranks), 1), game.empty[n]), inner,
                               np.full((len(ranks), 1), game.full[n])])  # fmt: skip
                credit = np.diff(v, axis=1)  # credit[p, k]: the change as position k joins
                phi[n, :m] += np.take_along_axis(credit, ranks, axis=1).sum(axis=0)
            phi[n, :m] /= len(rank)
        return phi, {}

    def attribute(
        self,
        inputs: Any,
        target: Target = None,
        baselines: Any = None,
        feature_mask: Any = None,
        n_samples: int | None = None,
        perturbations_per_eval: int | None = None,
        **captum_args: Any,
    ) -> np.ndarray:
        """Captum's ``ShapleyValueSampling(model).attribute(inputs, target=..., baselines=...,
        feature_mask=..., n_samples=..., perturbations_per_eval=...)`` (see
        :meth:`~npxai.analyzers.perturbation.PerturbationAnalyzer.explain_with`)."""
        reject("ShapleyValueSampling", captum_args)
        return self.explain_with(
            inputs, target, baselines, feature_mask, perturbations_per_eval, n_samples
        ).attribution


def kernel_coalitions(m: int, n_samples: int, rng: Any) -> tuple[np.ndarray, np.ndarray]:
    """The coalitions ``(S, m)`` (float 0/1) and weights ``(S,)`` of Kernel SHAP for ``m >= 2``
    features, as shap's ``KernelExplainer`` chooses them: ``min(n_samples, 2^m - 2)`` coalitions
    other than the empty and full one. The Shapley kernel puts mass ``(m - 1) / (s (m - s))``
    on the coalitions of size ``s`` (twice that on the sizes ``s < m / 2``, which pair with their
    complements of size ``m - s``), normalised. Sizes ``s = 1, 2, ...`` whose coalitions (and
    complements) the budget left covers at their share of the mass are enumerated in full, each
    coalition weighted with the mass of its size over their count; the rest of the budget draws
    sizes ``s`` with their remaining mass (``rng.choice``) and a coalition of that size
    (``rng.permutation(m)[:s]``), paired with its complement; a coalition drawn again adds 1 to
    its weight instead of a row, and the drawn weights are scaled to the mass left. ``rng`` a
    NumPy ``Generator`` (or a ``RandomState``: then given the same seed, shap's own draws)."""
    n_samples = min(n_samples, 2**m - 2)
    sizes, paired = math.ceil((m - 1) / 2), (m - 1) // 2
    mass = np.array([(m - 1.0) / (s * (m - s)) for s in range(1, sizes + 1)])
    mass[:paired] *= 2
    mass /= mass.sum()
    masks: list[np.ndarray] = []
    weights: list[float] = []
    left, remaining, full = n_samples, mass.copy(), 0
    for s in range(1, sizes + 1):
        count = math.comb(m, s) * (2 if s <= paired else 1)
        if left * remaining[s - 1] / count < 1 - 1e-8:
            break
        full, left = full + 1, left - count
        if remaining[s - 1] < 1:
            remaining /= 1 - remaining[s - 1]
        weight = mass[s - 1] / math.comb(m, s) / (2 if s <= paired else 1)
        for members in itertools.combinations(range(m), s):
            z = np.zeros(m)
            z[list(members)] = 1
            masks += [z, 1 - z] if s <= paired else [z]
            weights += [weight] * (2 if s <= paired else 1)
    if full < sizes:
        first = len(masks)
        draw_mass = mass.copy()
        draw_mass[:paired] /= 2  # each draw of a paired size adds two coalitions
        draw_mass = draw_mass[full:] / draw_mass[full:].sum()
        drawn_sizes = rng.choice(len(draw_mass), 4 * left, p=draw_mass) + full + 1
        seen: dict[bytes, int] = {}
        for s in drawn_sizes:
            if left == 0:
                break
            z = np.zeros(m)
            z[rng.permutation(m)[:s]] = 1
            row = seen.get(z.tobytes())
            if row is None:
                seen[z.tobytes()] = len(masks)
                masks.append(z)
                weights.append(1.0)
                left -= 1
            else:
                weights[row] += 1
            if left > 0 and s <= paired:
                if row is None:
                    masks.append(1 - z)
                    weights.append(1.0)
                    left -= 1
                else:
                    weights[row + 1] += 1
        drawn = np.array(weights[first:])
        weights[first:] = drawn * (mass[full:].sum() / drawn.sum())
    return np.array(masks), np.array(weights)


def kernel_shap_solve(
    masks: np.ndarray, weights: np.ndarray, values: np.ndarray, total: float
) -> np.ndarray:
    """``phi`` minimising ``sum_k w_k (values_k - z_k^T phi)^2`` subject to ``sum phi = total``
    (shap's: the last feature eliminated, ``phi_m = total - sum_{j<m} phi_j``, and the normal
    equations of the rest solved); a ``LinAlgError`` where they are singular (their matrix of
    rank below ``m - 1``)."""
    design = masks[:, :-1] - masks[:, -1:]
    weighted = weights[:, None] * design
    gram = design.T @ weighted
    if np.linalg.matrix_rank(gram) < len(gram):
        raise np.linalg.LinAlgError("the coalitions do not determine the Shapley values")
    rest = np.linalg.solve(gram, weighted.T @ (values - masks[:, -1] * total))
    return np.append(rest, total - rest.sum())


class KernelSHAP(PerturbationAnalyzer):
    """Kernel SHAP (Lundberg and Lee 2017), as shap's ``KernelExplainer`` with one baseline as its
    background and ``l1_reg=False``: the Shapley values are the weighted least squares fit
    ``v(S) - v(none) ~ sum_{i in S} phi_i`` over the coalitions of :func:`kernel_coalitions`
    (weighted by the Shapley kernel ``(M - 1) / (C(M, |S|) |S| (M - |S|))`` in expectation),
    subject to ``sum_i phi_i = v(all) - v(none)`` exactly (shap's elimination of one feature;
    Captum's ``KernelShap`` gives the empty and full coalitions a weight of 10^6 instead). With
    ``n_samples >= 2^M - 2`` every coalition is enumerated and the result is the exact Shapley
    values. ``n_samples`` counts the coalitions besides the empty and full one (shap's
    ``nsamples``; Captum's counts those two too), by default shap's ``2 M + 2048``; the draws use
    ``np.random.default_rng(seed)``, sample after sample. Coalitions too few to determine the
    fit (see :func:`kernel_shap_solve`) are a ``ValueError``.
    ``extras["n_coalitions"]``: the coalitions used per sample. At most 10000 features (the
    fit's normal matrix is ``M x M``), as LIME."""

    max_features = (10_000, "that the fit's M x M normal matrix allows")

    def __init__(
        self,
        model: Any,
        n_samples: int | None = None,
        feature_mask: FeatureMask = None,
        baselines: float | np.ndarray = 0.0,
        seed: int | None = None,
        batch_size: int = 64,
        backend: str | None = None,
    ):
        super().__init__(model, feature_mask, baselines, batch_size, backend)
        self.n_samples = (
            None if n_samples is None else positive_int(n_samples, "KernelSHAP: n_samples")
        )
        self.seed = optional_seed(seed, "KernelSHAP: seed")

    def feature_attribution(self, game: Game) -> tuple[np.ndarray, dict[str, Any]]:
        rng = np.random.default_rng(self.seed)
        drawn = [
            kernel_coalitions(int(m), self.n_samples or 2 * int(m) + 2048, rng)
            if m > 1 else (np.zeros((0, 1)), np.zeros(0))
            for m in game.counts
        ]  # fmt: skip

        def undetermined(n: int) -> ValueError:
            return ValueError(
                f"KernelSHAP: the {len(drawn[n][0])} coalitions drawn for sample {n} do not "
                f"determine the Shapley values of its {game.counts[n]} features; raise n_samples "
                f"(got {shown(self.n_samples)})"
            )

        for n, (masks, _) in enumerate(drawn):  # too few: refused before they are evaluated
            if len(masks) < game.counts[n] - 1:
                raise undetermined(n)
        values = game.values([masks for masks, _ in drawn])
        phi = np.zeros((len(drawn), int(game.counts.max())))
        for n, (masks, weights) in enumerate(drawn):
            total = game.full[n] - game.empty[n]
            if game.counts[n] == 1:
                phi[n, 0] = total
                continue
            try:
                y = values[n] - game.empty[n]
                phi[n, : masks.shape[1]] = kernel_shap_solve(masks, weights, y, total)
            except np.linalg.LinAlgError:
                raise undetermined(n) from None
        return phi, {"n_coalitions": np.array([len(masks) for masks, _ in drawn])}

    def attribute(
        self,
        inputs: Any,
        target: Target = None,
        baselines: Any = None,
        feature_mask: Any = None,
        n_samples: int | None = None,
        perturbations_per_eval: int | None = None,
        return_input_shape: bool = True,
        **captum_args: Any,
    ) -> np.ndarray:
        """Captum's ``KernelShap(model).attribute(inputs, target=..., baselines=...,
        feature_mask=..., n_samples=..., perturbations_per_eval=..., return_input_shape=...)``
        (see :meth:`~npxai.analyzers.perturbation.PerturbationAnalyzer.explain_with`; ``n_samples``
        as this analyzer's); ``return_input_shape=False`` returns ``phi`` ``(N, M_max)``."""
        reject("KernelSHAP", captum_args)
        explanation = self.explain_with(
            inputs, target, baselines, feature_mask, perturbations_per_eval, n_samples
        )
        return (
            explanation.attribution
            if return_input_shape
            else explanation.extras["feature_attribution"]
        )
