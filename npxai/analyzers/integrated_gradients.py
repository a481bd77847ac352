"""Integrated Gradients (Sundararajan et al. 2017) with a choice of quadrature."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import to_host
from ..gradient import target_indices
from ..module import Module, check_input
from ..progress import Progress, check_progress
from .base import Analyzer, Target, gradients_in_batches, reject, repeat_targets, to_numpy

QUADRATURES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gauss_legendre",
)


def quadrature(method: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha_k`` in [0, 1] and weights ``w_k`` (summing to 1) for ``int_0^1 g(a) da``.

    - ``riemann_left``: ``alpha_k = k/n``, ``k = 0..n-1``; ``w_k = 1/n``
    - ``riemann_right``: ``alpha_k = k/n``, ``k = 1..n``; ``w_k = 1/n``
    - ``riemann_middle``: ``alpha_k = (k + 1/2)/n``, ``k = 0..n-1``; ``w_k = 1/n``
    - ``riemann_trapezoid``: ``alpha_k = k/(n-1)``, ``k = 0..n-1``; ``w_k = 1/(n-1)``, halved at
      both ends (Captum's weights sum to ``(n-1)/n`` instead)
    - ``gauss_legendre``: the n-point Gauss-Legendre rule moved from [-1, 1] to [0, 1]
    """
    if method not in QUADRATURES:
        raise ValueError(f"unknown quadrature {method!r}; choose one of {', '.join(QUADRATURES)}")
    k = np.arange(n, dtype=np.float64)
    if method == "riemann_left":
        return k / n, np.full(n, 1 / n)
    if method == "riemann_right":
        return (k + 1) / n, np.full(n, 1 / n)
    if method == "riemann_middle":
        return (k + 0.5) / n, np.full(n, 1 / n)
    if method == "riemann_trapezoid":
        if n < 2:
            raise ValueError("riemann_trapezoid needs n >= 2")
        weights = np.full(n, 1 / (n - 1))
        weights[[0, -1]] /= 2
        return k / (n - 1), weights
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1) / 2, weights / 2


#: Captum's names for the quadratures whose points and weights are npxai's (Captum's
#: ``riemann_trapezoid`` weights sum to ``(n-1)/n``, npxai's to 1, so it is left out).
CAPTUM_METHODS = {
    "riemann_left": "riemann_left",
    "riemann_right": "riemann_right",
    "riemann_middle": "riemann_middle",
    "gausslegendre": "gauss_legendre",
}


def _check_baseline(baseline: Any) -> None:
    if isinstance(baseline, str) or np.asarray(baseline).dtype.kind not in "biuf":
        raise ValueError(
            "IntegratedGradients: baseline must be a number or an array of numbers broadcastable "
            f"to the input, got {baseline!r}"
        )
    if not np.isfinite(np.asarray(baseline)).all():
        raise ValueError("IntegratedGradients: baseline must be finite, got NaN or inf")


class IntegratedGradients(Analyzer):
    """``R(x) = (x - b) * sum_k w_k d f_t(b + alpha_k (x - b)) / d x``, the quadrature (see
    :func:`quadrature`) of ``(x - b) * int_0^1 d f_t(b + a (x - b)) / d x da``.

    Completeness: ``sum R(x) = f_t(x) - f_t(b)`` up to the quadrature error. ``baseline`` ``b`` is
    a scalar or an array broadcastable to the input. The target is chosen on ``x`` (its arg-max by
    default). Path points are made and go through the model ``batch_size`` at a time.
    ``progress``: a progress bar on standard error when it is a terminal
    (:class:`npxai.progress.Progress`).
    """

    heatmap_preset = "attribution"  # signed, as ExplainableAI.jl and Captum draw it

    def __init__(
        self,
        model: Module,
        n: int = 50,
        baseline: float | np.ndarray = 0.0,
        method: str = "riemann_right",
        batch_size: int = 32,
        backend: str | None = None,
        progress: bool = True,
    ):
        super().__init__(model, backend)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"IntegratedGradients: n must be a positive int, got {n!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"IntegratedGradients: batch_size must be a positive int, got {batch_size!r}"
            )
        _check_baseline(baseline)
        self.alphas, self.weights = quadrature(method, n)
        self.n, self.method, self.batch_size = n, method, batch_size
        self.baseline, self.progress = baseline, check_progress(progress, "IntegratedGradients")

    def __call__(self, x: Any, target: Target = None) -> Any:
        trace = self.model.trace(x, self.backend)
        x = to_host(trace.input)  # path points are made on the host and sent batch by batch
        try:
            baseline = np.broadcast_to(np.asarray(self.baseline, dtype=x.dtype), x.shape)
        except ValueError:
            raise ValueError(
                f"baseline of shape {np.shape(self.baseline)} does not broadcast to the input {x.shape}"
            ) from None
        check_input(baseline, "baseline")
        indices = target_indices(trace.output, target)
        alphas = self.alphas.astype(x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
        difference, samples = x - baseline, len(x)

        def path_points(rows: np.ndarray) -> np.ndarray:  # row r: alpha_{r // N}, sample r % N
            return baseline[rows % samples] + alphas[rows // samples] * difference[rows % samples]

        targets = repeat_targets(indices, self.n)
        batches = -(-len(targets) // self.batch_size)
        progress = Progress("IntegratedGradients", batches, self.progress)
        grads = np.concatenate([
            grads for _, grads in gradients_in_batches(
                self.model, path_points, targets, self.batch_size, trace.backend, progress
            )
        ]).reshape(self.n, *x.shape)  # fmt: skip
        average = np.tensordot(self.weights.astype(x.dtype), grads, axes=1)
        return self.explanation(difference * average, trace, indices, method=self.method, n=self.n)

    def attribute(
        self,
        inputs: Any,
        baselines: float | np.ndarray | None = None,
        target: Target = None,
        n_steps: int | None = None,
        method: str | None = None,
        internal_batch_size: int | None = None,
        **captum_args: Any,
    ) -> np.ndarray:
        """Captum's ``IntegratedGradients(model).attribute(inputs, baselines, target, n_steps=...,
        method=..., internal_batch_size=...)``: ``baselines`` is ``baseline``, ``n_steps`` ``n``,
        ``internal_batch_size`` ``batch_size``, ``method`` one of Captum's ``riemann_left``,
        ``riemann_right``, ``riemann_middle``, ``gausslegendre`` (npxai's ``gauss_legendre``).
        Arguments not given keep this analyzer's values (its ``method``, not Captum's default
        ``gausslegendre``)."""
        reject("IntegratedGradients", captum_args)
        if method is not None and method not in CAPTUM_METHODS:
            raise ValueError(
                f"IntegratedGradients.attribute: method {method!r} is not one whose Captum meaning "
                f"npxai shares; choose one of {', '.join(CAPTUM_METHODS)} (Captum's "
                "riemann_trapezoid weights sum to (n-1)/n; npxai's own "
                "IntegratedGradients(model, method='riemann_trapezoid') sums to 1)"
            )
        analyzer = IntegratedGradients(
            self.model,
            n=self.n if n_steps is None else n_steps,
            baseline=self.baseline if baselines is None else to_numpy(baselines),
            method=self.method if method is None else CAPTUM_METHODS[method],
            batch_size=self.batch_size if internal_batch_size is None else internal_batch_size,
            backend=self.backend,
            progress=self.progress,
        )
        return analyzer(to_numpy(inputs), to_numpy(target)).attribution
