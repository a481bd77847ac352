"""Integrated Gradients (Sundararajan et al. 2017) with a choice of quadrature."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import to_host
from ..gradient import resolve_target
from ..module import Module, check_input
from .base import Analyzer, Target, gradients_in_batches

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


class IntegratedGradients(Analyzer):
    """``R(x) = (x - b) * sum_k w_k d f_t(b + alpha_k (x - b)) / d x``, the quadrature (see
    :func:`quadrature`) of ``(x - b) * int_0^1 d f_t(b + a (x - b)) / d x da``.

    Completeness: ``sum R(x) = f_t(x) - f_t(b)`` up to the quadrature error. ``baseline`` ``b`` is
    a scalar or an array broadcastable to the input. The target is chosen on ``x`` (its arg-max by
    default). Path points go through the model ``batch_size`` at a time.
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
    ):
        super().__init__(model, backend)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"IntegratedGradients: n must be a positive int, got {n!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"IntegratedGradients: batch_size must be a positive int, got {batch_size!r}"
            )
        self.alphas, self.weights = quadrature(method, n)
        self.n, self.method, self.batch_size = n, method, batch_size
        self.baseline = baseline

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
        indices = resolve_target(trace.output, target)
        alphas = self.alphas.astype(x.dtype).reshape(-1, *(1,) * x.ndim)
        points = (baseline + alphas * (x - baseline)).reshape(-1, *x.shape[1:])
        targets = np.tile(indices, self.n)
        grads = gradients_in_batches(self.model, points, targets, self.batch_size, trace.backend)
        grads = grads.reshape(self.n, *x.shape)
        average = np.tensordot(self.weights.astype(x.dtype), grads, axes=1)
        return self.explanation(
            (x - baseline) * average, trace, indices, method=self.method, n=self.n
        )
