"""GradientShap (Lundberg and Lee 2017; Captum's ``GradientShap``): expected gradients between
baselines drawn from a set and noisy copies of the input."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import finite_number, optional_seed, positive_int, shown
from ..device import to_host
from ..explanation import Explanation
from ..gradient import target_indices
from ..module import Module
from ..progress import Progress, check_progress
from .base import Analyzer, Target, gradients_in_batches, reject, repeat_targets, to_numpy


def _check_baselines(baselines: Any) -> np.ndarray:
    baselines = to_numpy(baselines)
    if isinstance(baselines, str) or np.asarray(baselines).dtype.kind not in "biuf":
        raise ValueError(
            "GradientShap: baselines must be an array of numbers, a set of baselines of shape "
            f"(B, *sample shape), got {shown(baselines)}"
        )
    baselines = np.asarray(baselines)
    if baselines.ndim == 0 or len(baselines) == 0:
        raise ValueError(
            "GradientShap: baselines must be a set of B >= 1 baselines of shape (B, *sample "
            f"shape) (one baseline b: b[None]), got shape {baselines.shape}"
        )
    if not np.isfinite(baselines).all():
        raise ValueError("GradientShap: baselines must be finite, got NaN or inf")
    return baselines


class GradientShap(Analyzer):
    """``R(x) = 1/n sum_k (x~_k - b_k) * d f_t(z_k) / d z``, ``z_k = alpha_k x~_k + (1 - alpha_k)
    b_k``, for each sample ``x`` of the batch and ``k = 0..n-1`` (``n = n_samples``), where

    - ``x~_k = x + stdevs * eps_k``, ``eps_k ~ N(0, I)``: a noisy copy (``stdevs`` absolute, the
      same for every sample, default 0: no noise);
    - ``b_k`` is drawn uniformly, with replacement, from the ``B`` rows of ``baselines``
      (``(B, *sample shape)``);
    - ``alpha_k ~ U[0, 1)``.

    This is Captum 0.9.0's ``GradientShap`` (with its default ``multiply_by_inputs=True``; the
    gradients alone are not offered): the difference is taken to the noisy copy ``x~_k``, not to
    ``x``. Its expectation, with ``stdevs=0``, is ``E_b[(x - b) * int_0^1 d f_t(b +
    a (x - b)) / d x da]``, the mean over the baselines of IntegratedGradients' exact integral:
    with one baseline it is :class:`~npxai.analyzers.integrated_gradients.IntegratedGradients`
    with ``n`` uniformly random points of weight ``1/n``. On a linear model every term is
    ``w_t * (x~_k - b_k)``, so ``sum R = f_t(x) - 1/n sum_k f_t(b_k)`` (with ``stdevs=0``).

    The draws: ``rng = np.random.default_rng(seed)``; then, in this order, the baseline indices
    ``rng.integers(B, size=(n, N))``, the ``alpha = rng.random((n, N))`` and, if ``stdevs > 0``,
    ``eps = rng.standard_normal((n, *x.shape))`` (drawn batch by batch, the same numbers), entry
    ``[k, i]`` being sample ``i``'s ``k``-th draw. Captum draws the same kinds of numbers with
    NumPy's global ``np.random.choice`` and ``np.random.uniform`` and with ``torch.normal``,
    sample-major. The target is chosen on the clean input (its arg-max by default) and every
    draw explains it. Points are made on the host and go through the model ``batch_size`` rows at
    a time, row ``r`` being draw ``r // N`` of sample ``r % N``. ``progress``: a progress bar on
    standard error when it is a terminal (:class:`npxai.progress.Progress`).
    """

    heatmap_preset = "attribution"

    def __init__(
        self,
        model: Module,
        baselines: np.ndarray,
        n_samples: int = 5,
        stdevs: float = 0.0,
        seed: int | None = None,
        batch_size: int = 32,
        backend: str | None = None,
        progress: bool = True,
    ):
        super().__init__(model, backend)
        self.baselines = _check_baselines(baselines)
        self.n_samples = positive_int(n_samples, "GradientShap: n_samples")
        self.stdevs = finite_number(stdevs, "GradientShap: stdevs", minimum=0)
        self.seed = optional_seed(seed, "GradientShap: seed")
        self.batch_size = positive_int(batch_size, "GradientShap: batch_size")
        self.progress = check_progress(progress, "GradientShap")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        trace = self.model.trace(x, self.backend)
        x = to_host(trace.input)  # the draws are made on the host, the same on every backend
        if self.baselines.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"GradientShap: baselines of shape {self.baselines.shape} do not fit the input "
                f"{x.shape}: they must be (B, *sample shape) = (B, {', '.join(map(str, x.shape[1:]))})"
            )
        indices = target_indices(trace.output, target)
        baselines = self.baselines.astype(x.dtype)
        n, samples = self.n_samples, len(x)
        rng = np.random.default_rng(self.seed)
        chosen = rng.integers(len(baselines), size=(n, samples)).ravel()  # row r = k * N + i
        alphas = rng.random((n, samples)).astype(x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
        # gradients_in_batches calls points(rows) just before it yields those rows: their
        # x~ - b is kept from there for the product (one batch at a time)
        differences = []

        def points(rows: np.ndarray) -> np.ndarray:
            noisy = x[rows % samples]
            if self.stdevs > 0:  # drawn last, so the other draws do not depend on it
                noise = rng.standard_normal((len(rows), *x.shape[1:])).astype(x.dtype)
                noisy = noisy + noise * x.dtype.type(self.stdevs)
            base = baselines[chosen[rows]]
            differences[:] = [noisy - base]
            return alphas[rows] * noisy + (1 - alphas[rows]) * base

        targets = repeat_targets(indices, n)
        progress = Progress("GradientShap", -(-len(targets) // self.batch_size), self.progress)
        total = np.zeros_like(x)
        for rows, grads in gradients_in_batches(
            self.model, points, targets, self.batch_size, trace.backend, progress
        ):
            np.add.at(total, rows % samples, differences[0] * grads)
        return self.explanation(
            total / n, trace, indices, n_samples=n, stdevs=self.stdevs, baselines=len(baselines)
        )

    def attribute(
        self,
        inputs: Any,
        baselines: np.ndarray | None = None,
        n_samples: int | None = None,
        stdevs: float | None = None,
        target: Target = None,
        **captum_args: Any,
    ) -> np.ndarray:
        """Captum's ``GradientShap(model).attribute(inputs, baselines, n_samples=5, stdevs=0.0,
        target=...)``; arguments not given keep this analyzer's values (and its seed: Captum
        draws from NumPy's and torch's global generators)."""
        reject("GradientShap", captum_args)
        analyzer = GradientShap(
            self.model,
            self.baselines if baselines is None else baselines,
            self.n_samples if n_samples is None else n_samples,
            self.stdevs if stdevs is None else stdevs,
            self.seed,
            self.batch_size,
            self.backend,
            self.progress,
        )
        return analyzer(to_numpy(inputs), to_numpy(target)).attribution
