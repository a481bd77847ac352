"""The pattern estimators of PatternNet and PatternAttribution (Kindermans et al., ICLR 2018).

A ``Linear`` or ``Conv2d`` output unit computes ``y = w^T x`` (plus a bias) from its input ``x``:
for a ``Linear`` unit ``x`` is the layer's input row and ``w`` the unit's weight row; for a
``Conv2d`` channel ``x`` is the (zero-padded) input patch that one output position reads (its
group's channels, ``C / groups * kh * kw`` values) and ``w`` the channel's kernel, and every
output position of every sample is one observation of ``(x, y)``. A pattern ``a`` has ``w``'s
shape; the estimators are the paper's:

- ``"linear"`` (``S_a``): over all observations,
  ``a = cov[x, y] / (w^T cov[x, y])``, with ``cov[x, y] = E[x y] - E[x] E[y]``
  (``w^T cov[x, y] = var[y]``, so ``a = cov[x, y] / sigma_y^2``);
- ``"two_component"`` (``S_a+-``), for ReLU networks: its positive part, over the observations
  where the unit is active (``E+``: the mean over ``y > 0``),
  ``a+ = (E+[x y] - E+[x] E+[y]) / (w^T E+[x y] - w^T E+[x] E+[y])``; the negative part
  ``a-`` (over ``y <= 0``) is not learned: a ReLU passes no signal there, and PatternNet and
  PatternAttribution use ``a+`` alone, as the paper and iNNvestigate 1.x do.

``y`` is the layer's recorded output, bias included, so "active" means ``w^T x + b > 0``, the
ReLU's gate when a ReLU follows; the covariances do not depend on the bias. A unit whose
denominator is exactly zero (one never active, or active on one observation only) gets the
pattern ``0`` (iNNvestigate 1.x divides by 1 there instead, leaving the covariance). The other
convention that differs from iNNvestigate 1.x (``innvestigate.tools.pattern``, whose ``"relu"``
pattern is ``S_a+``): its ``E+[y]`` is the mean of the bias-free ``w^T x`` over all
observations, not over the active ones; here it is the paper's ``E+[y]``.

The statistics are streaming float64 sums, per output unit ``j``: the count ``n_j`` of
observations it counts (all, or the active ones), ``sum x``, ``sum y`` and ``sum x y`` over them,
so that fitting in batches gives the patterns of fitting at once (up to the order of the sums).
"""

from __future__ import annotations

import numpy as np

from .. import layers as L
from ..reference.window import pad2d, window

#: The estimators, by the name ``PatternNet(estimator=...)`` takes.
ESTIMATORS = ("two_component", "linear")


class Moments:
    """One layer's streaming sums (float64) over the observations each output unit counts:
    ``count (O,)``, ``sum_x (O, D)``, ``sum_y (O,)``, ``sum_xy (O, D)``, ``D`` being the size of
    one unit's input (``in_features``, or ``C / groups * kh * kw``)."""

    def __init__(self, layer: L.Linear | L.Conv2d, estimator: str):
        out, d = layer.weight.shape[0], int(np.prod(layer.weight.shape[1:]))
        self.layer, self.estimator = layer, estimator
        self.count = np.zeros(out)
        self.sum_x = np.zeros((out, d))
        self.sum_y = np.zeros(out)
        self.sum_xy = np.zeros((out, d))

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add one batch: the layer's recorded input ``x`` and output ``y`` (float64)."""
        mask = (y > 0) if self.estimator == "two_component" else np.ones(y.shape, dtype=bool)
        counted = np.where(mask, y, 0.0)
        mask = mask.astype(np.float64)
        if isinstance(self.layer, L.Linear):
            sums = _linear_sums(x, mask, counted)
        else:
            sums = _conv_sums(self.layer, x, mask, counted)
        for name, value in zip(("count", "sum_x", "sum_y", "sum_xy"), sums, strict=True):
            getattr(self, name)[...] += value

    def pattern(self) -> np.ndarray:
        """The pattern, of the weight's shape (float64): ``cov / (w^T cov)`` per unit, ``cov``
        the (active observations') covariance of ``x`` and ``y``; ``0`` where ``w^T cov == 0``."""
        w = self.layer.weight.reshape(len(self.count), -1).astype(np.float64)
        n = np.maximum(self.count, 1.0)[:, None]  # a unit with no observation has zero sums
        cov = self.sum_xy / n
        cov -= (self.sum_x / n) * (self.sum_y[:, None] / n)
        var = np.einsum("jd,jd->j", w, cov)[:, None]  # w^T cov, unit by unit
        np.divide(cov, var, out=cov, where=var != 0)
        cov[(var == 0)[:, 0]] = 0.0
        return cov.reshape(self.layer.weight.shape)


def _linear_sums(x: np.ndarray, mask: np.ndarray, counted: np.ndarray) -> tuple[np.ndarray, ...]:
    """A ``Linear`` layer's batch sums: every row of ``x (N, ..., D)`` is an observation."""
    x = x.reshape(-1, x.shape[-1])
    mask, counted = mask.reshape(len(x), -1), counted.reshape(len(x), -1)
    return mask.sum(axis=0), mask.T @ x, counted.sum(axis=0), counted.T @ x


def _conv_sums(
    layer: L.Conv2d, x: np.ndarray, mask: np.ndarray, counted: np.ndarray
) -> tuple[np.ndarray, ...]:
    """A ``Conv2d`` layer's batch sums: every output position's input patch is an observation.
    Built per kernel offset ``(i, j)`` from the padded input's strided window, one matrix product
    per group over all samples and positions (no patch matrix is made)."""
    n, _, oh, ow = mask.shape
    out, cg, kh, kw = layer.weight.shape
    groups = layer.groups
    xp = pad2d(x, layer.explicit_padding())
    xg = xp.reshape(n, groups, cg, *xp.shape[-2:])

    def by_group(a: np.ndarray) -> np.ndarray:  # (N, O, oh, ow) -> (G, O / G, N * oh * ow)
        a = a.reshape(n, groups, out // groups, oh * ow).transpose(1, 2, 0, 3)
        return a.reshape(groups, out // groups, n * oh * ow)

    mask_g, counted_g = by_group(mask), by_group(counted)
    sum_x = np.zeros((groups, out // groups, cg, kh, kw))
    sum_xy = np.zeros_like(sum_x)
    for i in range(kh):
        for j in range(kw):
            patch = window(xg, (i, j), (oh, ow), layer.stride, layer.dilation)
            rows = patch.reshape(n, groups, cg, oh * ow).transpose(1, 0, 3, 2)
            rows = rows.reshape(groups, n * oh * ow, cg)  # (G, observations, C / G)
            sum_x[..., i, j] = mask_g @ rows
            sum_xy[..., i, j] = counted_g @ rows
    return (
        mask.sum(axis=(0, 2, 3)),
        sum_x.reshape(out, -1),
        counted.sum(axis=(0, 2, 3)),
        sum_xy.reshape(out, -1),
    )
