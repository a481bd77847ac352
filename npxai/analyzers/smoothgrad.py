"""SmoothGrad (Smilkov et al. 2017)."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from ..checks import optional_seed
from ..device import to_host
from ..gradient import target_indices
from ..module import Module
from ..progress import Progress, check_progress
from .base import Analyzer, Target, gradients_in_batches, reject, repeat_targets, to_numpy


def noise_scale(x: np.ndarray, noise_level: float) -> np.ndarray:
    """Per-sample standard deviation ``sigma_n = noise_level * (max x_n - min x_n)``."""
    flat = x.reshape(len(x), -1)
    return noise_level * (flat.max(axis=1) - flat.min(axis=1))


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"SmoothGrad: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < math.inf:
        raise ValueError(f"SmoothGrad: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class SmoothGrad(Analyzer):
    """``R(x) = 1/n sum_k d f_t(x + e_k) / d x`` with ``e_k ~ N(0, sigma^2 I)``.

    ``sigma = noise_level * (max x - min x)``, per sample (the standard deviation itself: not its
    square, as ExplainableAI.jl passes by mistake), or ``sigma`` itself if given, the same for
    every sample (Captum's NoiseTunnel ``stdevs``). All ``n`` copies are noisy. The noise is
    ``np.random.default_rng(seed).standard_normal((n, *x.shape))`` times ``sigma``, so a seed gives
    the same result every time. The target is chosen on the clean input (its arg-max by default),
    and every noisy copy explains that same output. Copies are made and go through the model
    ``batch_size`` at a time (drawing the noise batch by batch draws the same numbers), and their
    gradients are summed as they come. ``progress``: a progress bar on standard error when it is a
    terminal (:class:`npxai.progress.Progress`).
    """

    heatmap_preset = "sensitivity"

    def __init__(
        self,
        model: Module,
        n: int = 50,
        noise_level: float = 0.1,
        seed: int | None = None,
        batch_size: int = 32,
        backend: str | None = None,
        sigma: float | None = None,
        progress: bool = True,
    ):
        super().__init__(model, backend)
        self.n = _check_positive_int(n, "n")
        self.noise_level = _check_scale(noise_level, "noise_level")
        self.sigma = None if sigma is None else _check_scale(sigma, "sigma")
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        self.seed = optional_seed(seed, "SmoothGrad: seed")
        self.progress = check_progress(progress, "SmoothGrad")

    def __call__(self, x: Any, target: Target = None) -> Any:
        trace = self.model.trace(x, self.backend)
        x = to_host(trace.input)  # the noise is drawn on the host, the same on every backend
        indices = target_indices(trace.output, target)
        if self.sigma is None:
            sigma = noise_scale(x, self.noise_level).astype(x.dtype)
        else:
            sigma = np.full(len(x), self.sigma, x.dtype)
        rng = np.random.default_rng(self.seed)
        samples = len(x)

        def noisy_copies(rows: np.ndarray) -> np.ndarray:
            # rows are drawn in order: the same numbers as one draw of shape (n, *x.shape)
            noise = rng.standard_normal((len(rows), *x.shape[1:])).astype(x.dtype)
            scale = sigma[rows % samples].reshape(-1, *(1,) * (x.ndim - 1))
            return x[rows % samples] + noise * scale

        targets = repeat_targets(indices, self.n)
        batches = -(-len(targets) // self.batch_size)
        progress = Progress("SmoothGrad", batches, self.progress)
        total = None
        for rows, grads in gradients_in_batches(
            self.model, noisy_copies, targets, self.batch_size, trace.backend, progress
        ):
            if total is None:
                total = np.zeros((samples, *grads.shape[1:]), grads.dtype)
            copy = rows // samples
            for k in np.unique(copy):  # copy k's rows: consecutive samples, each added once
                total[rows[copy == k] % samples] += grads[copy == k]
        attribution = total / self.n
        return self.explanation(attribution, trace, indices, sigma=sigma, n=self.n)

    def attribute(
        self,
        inputs: Any,
        target: Target = None,
        nt_type: str = "smoothgrad",
        nt_samples: int | None = None,
        nt_samples_batch_size: int | None = None,
        stdevs: float | None = None,
        abs: bool = False,
        **captum_args: Any,
    ) -> np.ndarray:
        """Captum's ``NoiseTunnel(Saliency(model)).attribute(inputs, nt_type="smoothgrad",
        nt_samples=..., stdevs=..., abs=False, target=...)``: ``nt_samples`` is ``n``,
        ``nt_samples_batch_size`` ``batch_size``, ``stdevs`` an absolute ``sigma`` (as Captum's);
        arguments not given keep this analyzer's values. Only ``nt_type="smoothgrad"`` and
        ``abs=False`` (the mean of signed gradients) are npxai's SmoothGrad: Captum's Saliency
        takes ``abs=True`` by default, the mean of ``|gradient|``."""
        reject("SmoothGrad", captum_args)
        if nt_type != "smoothgrad":
            raise ValueError(f"SmoothGrad.attribute: nt_type must be 'smoothgrad', got {nt_type!r}")
        if abs is not False:
            raise ValueError(
                "SmoothGrad.attribute: abs must be False (npxai averages signed gradients; "
                "Captum's Saliency default abs=True averages their absolute values)"
            )
        if stdevs is not None and not isinstance(stdevs, Real):
            raise ValueError(f"SmoothGrad.attribute: stdevs must be one number, got {stdevs!r}")
        analyzer = SmoothGrad(
            self.model,
            n=self.n if nt_samples is None else nt_samples,
            noise_level=self.noise_level,
            seed=self.seed,
            batch_size=self.batch_size if nt_samples_batch_size is None else nt_samples_batch_size,
            backend=self.backend,
            sigma=self.sigma if stdevs is None else stdevs,
            progress=self.progress,
        )
        return analyzer(to_numpy(inputs), to_numpy(target)).attribution
