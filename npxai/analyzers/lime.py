"""LIME (Ribeiro, Singh and Guestrin 2016): a weighted linear surrogate of the model around a
sample, fitted on random coalitions of its interpretable features.

For each sample (features ``1..M``, see :mod:`npxai.analyzers.features`), ``S`` coalitions
``z_k`` in ``{0, 1}^M`` are drawn, each feature kept with probability 1/2 (Captum's default
``perturb_func``): ``np.random.default_rng(seed).random((S, M)) < 0.5``, one such draw per sample
in batch order. Each is weighted by the exponential kernel of the distance between the sample
``x`` and the perturbed input ``h(z_k)`` (:mod:`npxai.analyzers.perturbation`), flattened, as
Captum's ``get_exp_kernel_similarity_function``::

    pi_k = exp(-d(x, h(z_k))^2 / (2 sigma^2)),
    d = 1 - <x, h> / (|x| |h|)   (distance_mode="cosine"; d = 1 where x or h is 0),
    d = |x - h|                  (distance_mode="euclidean")

``sigma`` the ``kernel_width``. The surrogate ``g(z) = beta_0 + z^T beta`` minimises the ridge
objective (scikit-learn's ``Ridge(alpha)`` with ``sample_weight=pi``, the intercept not
penalised)::

    sum_k pi_k (v(z_k) - beta_0 - z_k^T beta)^2 + alpha |beta|^2

solved in closed form on the weighted-centred data ``Zc = sqrt(pi) (Z - z_mean)``, ``yc =
sqrt(pi) (y - y_mean)`` (weighted means), in float64: ``(Zc^T Zc + alpha I) beta = Zc^T yc``;
``alpha=0`` is weighted least squares, the minimum-norm solution where the coalitions do not
determine it (as scikit-learn's ``LinearRegression``); ``beta_0 = y_mean - z_mean^T beta``.
Each entry's attribution is its feature's ``beta_j`` (Captum's ``return_input_shape=True``).

Defaults that differ from a peer: Captum's ``Lime`` fits ``Lasso(alpha=0.01)`` on every scalar
as a feature; the ``lime`` package fits ``Ridge(alpha=1)`` with its kernel on the cosine distance
of the binary vectors ``z_k`` to all ones (width 0.25) and includes the unperturbed sample. npxai:
ridge ``alpha=1``, Captum's kernel (cosine, width 1) in input space, superpixels of
:func:`~npxai.analyzers.features.grid_mask` (``superpixel_size``) unless ``feature_mask`` is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import finite_number, optional_seed, positive_int, shown
from .base import Target, reject
from .features import FeatureMask, grid_mask
from .perturbation import Game, PerturbationAnalyzer


def kernel_weights(game: Game, n: int, present: np.ndarray, mode: str, width: float) -> np.ndarray:
    """``pi_k`` of sample ``n``'s coalitions ``present`` ``(S, M)``, from per-feature sums (the
    perturbed inputs are never formed): ``<x, h> = sum_j z_j X_j + (1 - z_j) C_j`` with ``X_j =
    sum_{i in j} x_i^2``, ``C_j = sum_{i in j} x_i b_i``, and so on."""
    x, b, labels, m = game.x[n], game.baseline[n], game.labels[n], present.shape[1]
    x, b = x.astype(np.float64), b.astype(np.float64)
    z = present.astype(np.float64)

    def per_feature(values: np.ndarray) -> np.ndarray:
        return np.bincount(labels, values, minlength=m)

    if mode == "euclidean":
        distance2 = (1 - z) @ per_feature((x - b) ** 2)
    else:
        xx, xb, bb = per_feature(x * x), per_feature(x * b), per_feature(b * b)
        dot, hh = z @ xx + (1 - z) @ xb, z @ xx + (1 - z) @ bb
        norms = np.sqrt(xx.sum() * hh)
        cosine = np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)
        distance2 = (1 - cosine) ** 2
    return np.exp(-distance2 / (2 * width**2))


def ridge(
    z: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float
) -> tuple[np.ndarray, float]:
    """``(beta, beta_0)`` of the weighted ridge objective (see :mod:`npxai.analyzers.lime`)."""
    total = weights.sum()
    z_mean, y_mean = weights @ z / total, weights @ y / total
    root = np.sqrt(weights)[:, None]
    centred, target = root * (z - z_mean), root[:, 0] * (y - y_mean)
    if alpha > 0:
        gram = centred.T @ centred + alpha * np.eye(z.shape[1])
        beta = np.linalg.solve(gram, centred.T @ target)
    else:
        beta = np.linalg.lstsq(centred, target, rcond=None)[0]
    return beta, float(y_mean - z_mean @ beta)


class LIME(PerturbationAnalyzer):
    """LIME (see :mod:`npxai.analyzers.lime`): ``n_samples`` coalitions per sample, drawn with
    ``seed``; ``kernel_width`` and ``distance_mode`` (``"cosine"`` or ``"euclidean"``) the
    kernel's; ``alpha`` the ridge penalty; ``feature_mask`` the features
    (:mod:`npxai.analyzers.features`), a grid of ``superpixel_size`` cells when not given;
    ``baselines``, ``batch_size`` and ``model`` as for every perturbation analyzer
    (:class:`~npxai.analyzers.perturbation.PerturbationAnalyzer`). ``extras["intercept"]``:
    ``beta_0`` per sample. At most 10000 features (the surrogate's normal matrix is ``M x M``;
    Captum warns above 10000 too)."""

    max_features = (10_000, "that the surrogate's M x M normal matrix allows")

    def __init__(
        self,
        model: Any,
        n_samples: int = 1000,
        feature_mask: FeatureMask = None,
        baselines: float | np.ndarray = 0.0,
        kernel_width: float = 1.0,
        distance_mode: str = "cosine",
        alpha: float = 1.0,
        superpixel_size: int = 16,
        seed: int | None = None,
        batch_size: int = 64,
        backend: str | None = None,
    ):
        self.superpixel_size = positive_int(superpixel_size, "LIME: superpixel_size")
        if feature_mask is None:
            feature_mask = self._grid
        super().__init__(model, feature_mask, baselines, batch_size, backend)
        self.n_samples = positive_int(n_samples, "LIME: n_samples")
        self.kernel_width = finite_number(kernel_width, "LIME: kernel_width")
        if self.kernel_width <= 0:
            raise ValueError(f"LIME: kernel_width must be > 0, got {shown(kernel_width)}")
        if distance_mode not in ("cosine", "euclidean"):
            raise ValueError(
                f"LIME: distance_mode must be 'cosine' or 'euclidean', got {shown(distance_mode)}"
            )
        self.distance_mode = distance_mode
        self.alpha = finite_number(alpha, "LIME: alpha", minimum=0)
        self.seed = optional_seed(seed, "LIME: seed")

    def _grid(self, sample: np.ndarray) -> np.ndarray:
        return grid_mask(sample.shape, self.superpixel_size)

    def feature_attribution(self, game: Game) -> tuple[np.ndarray, dict[str, Any]]:
        rng = np.random.default_rng(self.seed)
        draws = [rng.random((self.n_samples, m)) < 0.5 for m in game.counts]
        values = game.values(draws)
        coefficients = np.zeros((len(draws), int(game.counts.max())))
        intercepts = np.zeros(len(draws))
        for n, draw in enumerate(draws):
            weights = kernel_weights(game, n, draw, self.distance_mode, self.kernel_width)
            beta, intercepts[n] = ridge(draw.astype(np.float64), values[n], weights, self.alpha)
            coefficients[n, : len(beta)] = beta
        return coefficients, {"intercept": intercepts}

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
        """Captum's ``Lime(model).attribute(inputs, target=..., baselines=...,
        feature_mask=..., n_samples=..., perturbations_per_eval=..., return_input_shape=...)``
        (see :meth:`PerturbationAnalyzer.explain_with`); ``return_input_shape=False`` returns
        the coefficients ``(N, M_max)``. The surrogate and kernel are this analyzer's (Captum's
        default surrogate is ``Lasso(alpha=0.01)``)."""
        reject("LIME", captum_args)
        explanation = self.explain_with(
            inputs, target, baselines, feature_mask, perturbations_per_eval, n_samples
        )
        return (
            explanation.attribution
            if return_input_shape
            else explanation.extras["feature_attribution"]
        )
