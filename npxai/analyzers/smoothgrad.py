"""SmoothGrad (Smilkov et al. 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import to_host
from ..gradient import resolve_target
from ..module import Module
from .base import Analyzer, Target, gradients_in_batches


def noise_scale(x: np.ndarray, noise_level: float) -> np.ndarray:
    """Per-sample standard deviation ``sigma_n = noise_level * (max x_n - min x_n)``."""
    flat = x.reshape(len(x), -1)
    return noise_level * (flat.max(axis=1) - flat.min(axis=1))


class SmoothGrad(Analyzer):
    """``R(x) = 1/n sum_k d f_t(x + e_k) / d x`` with ``e_k ~ N(0, sigma^2 I)``.

    ``sigma = noise_level * (max x - min x)``, per sample (the standard deviation itself: not its
    square, as ExplainableAI.jl passes by mistake, and not an absolute sigma, as Captum's
    NoiseTunnel takes). All ``n`` copies are noisy. The noise is
    ``np.random.default_rng(seed).standard_normal((n, *x.shape))`` times ``sigma``, so a seed gives
    the same result every time. The target is chosen on the clean input (its arg-max by default),
    and every noisy copy explains that same output. Copies go through the model ``batch_size``
    at a time.
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
    ):
        super().__init__(model, backend)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"SmoothGrad: n must be a positive int, got {n!r}")
        if not noise_level >= 0:
            raise ValueError(f"SmoothGrad: noise_level must be >= 0, got {noise_level!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"SmoothGrad: batch_size must be a positive int, got {batch_size!r}")
        self.n, self.noise_level, self.seed, self.batch_size = (
            n,
            float(noise_level),
            seed,
            batch_size,
        )

    def __call__(self, x: Any, target: Target = None) -> Any:
        trace = self.model.trace(x, self.backend)
        x = to_host(trace.input)  # the noise is drawn on the host, the same on every backend
        indices = resolve_target(trace.output, target)
        sigma = noise_scale(x, self.noise_level).astype(x.dtype)
        noise = np.random.default_rng(self.seed).standard_normal((self.n, *x.shape))
        noisy = x + noise.astype(x.dtype) * sigma.reshape(1, -1, *(1,) * (x.ndim - 1))
        copies = noisy.reshape(-1, *x.shape[1:])
        targets = np.tile(indices, self.n)
        grads = gradients_in_batches(self.model, copies, targets, self.batch_size, trace.backend)
        attribution = grads.reshape(self.n, *x.shape).mean(axis=0)
        return self.explanation(attribution, trace, indices, sigma=sigma, n=self.n)
