"""ROAD, RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods"): the model's accuracy on images whose most (or least) relevant pixels are
replaced by noisy linear imputation, at each of a list of percentages.

**Noisy linear imputation.** Each removed pixel ``p`` of a channel takes the value ``v_p`` that
makes it the weighted mean of its (up to 8) neighbours ``q`` inside the image, weights ``w_pq =
1/6`` for the four direct and ``1/12`` for the four diagonal neighbours; kept pixels keep their
value ``x_q``::

    (sum_{q ~ p} w_pq) v_p - sum_{q ~ p, q removed} w_pq v_q = sum_{q ~ p, q kept} w_pq x_q,

one sparse linear system per (sample, mask channel), solved with :func:`scipy.sparse.linalg.spsolve`
(all of a batch's systems as one block-diagonal system), then ``noise * z_p``, ``z_p ~ N(0, 1)``, is
added to each removed entry. The system and its weights are Quantus 0.6.0's
``noisy_linear_imputation`` (from the paper's code, github.com/tleemann/road_evaluation): its
solution equals Quantus's (tested to 1e-12 given the same ``z``). Every connected group of removed
pixels borders a kept pixel (the 8-neighbour grid is connected), so the system is irreducibly
diagonally dominant, hence regular, whenever a channel keeps at least one pixel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

from ..analyzers.base import Target, to_numpy
from ..checks import finite_number, optional_seed, shown
from .base import Attribution, check_choice, prepare

#: ``(row offset, column offset, weight)`` of a pixel's neighbours, as in Quantus and the paper.
NEIGHBOURS = (
    (1, 1, 1 / 12),
    (0, 1, 1 / 6),
    (-1, 1, 1 / 12),
    (1, -1, 1 / 12),
    (0, -1, 1 / 6),
    (-1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (-1, 0, 1 / 6),
)


def linear_imputation(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` (float64, ``(N, C, H, W)``) with the entries under ``mask`` (bool ``(N, 1 or C, H,
    W)``, a one-channel mask removing a pixel from every channel) replaced by the solution of the
    module's linear system, without noise. A (sample, mask channel) with every pixel removed has
    nothing to impute from: its system is singular (every constant solves it) and it gets the
    minimum-norm solution, 0 (the end of a pixel-flipping curve; ROAD itself never removes
    everything)."""
    n, c, h, w = x.shape
    m = mask.shape[1]
    groups = n * m
    # values[g, i, j, k]: group g = (sample, mask channel), k the channels that mask channel covers
    values = x.reshape(n, m, c // m, h, w).transpose(0, 1, 3, 4, 2).reshape(groups, h, w, c // m)
    values = values.copy()
    removed = mask.reshape(groups, h, w)
    full = removed.all(axis=(1, 2))
    values[full] = 0.0
    removed = removed & ~full[:, None, None]
    unknowns = int(removed.sum())
    if unknowns == 0:
        return values.reshape(n, m, h, w, c // m).transpose(0, 1, 4, 2, 3).reshape(n, c, h, w)
    ids = np.full((groups, h + 2, w + 2), -1)
    ids[:, 1:-1, 1:-1][removed] = np.arange(unknowns)
    inside = np.zeros((groups, h + 2, w + 2), bool)
    inside[:, 1:-1, 1:-1] = True
    padded = np.zeros((groups, h + 2, w + 2, c // m))
    padded[:, 1:-1, 1:-1] = values
    diagonal = np.zeros(unknowns)
    right = np.zeros((unknowns, c // m))
    rows, cols, weights = [], [], []
    for dy, dx, weight in NEIGHBOURS:
        window = np.s_[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        valid = inside[window][removed]
        neighbour = ids[window][removed]
        diagonal += weight * valid
        kept = valid & (neighbour < 0)
        right[kept] += weight * padded[window][removed][kept]
        rows.append(np.flatnonzero(neighbour >= 0))
        cols.append(neighbour[neighbour >= 0])
        weights.append(np.full(len(rows[-1]), -weight))
    rows.append(np.arange(unknowns))
    cols.append(np.arange(unknowns))
    weights.append(diagonal)
    system = coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(unknowns, unknowns),
    ).tocsc()
    imputed = values.copy()
    imputed[removed] = spsolve(system, right).reshape(unknowns, c // m)
    return imputed.reshape(n, m, h, w, c // m).transpose(0, 1, 4, 2, 3).reshape(n, c, h, w)


def noisy(imputed: np.ndarray, mask: np.ndarray, z: np.ndarray, noise: float) -> np.ndarray:
    """``imputed + noise * z`` on the entries under ``mask`` (broadcast to ``imputed``)."""
    return np.where(mask, imputed + noise * z, imputed)


def check_images(x: np.ndarray, owner: str) -> None:
    """``ValueError`` unless ``x`` is a batch of images ``(N, C, H, W)``."""
    if x.ndim != 4:
        raise ValueError(f"{owner}: x must be a batch of images (N, C, H, W), got shape {x.shape}")


def check_mask(x: np.ndarray, mask: np.ndarray, owner: str) -> None:
    """``ValueError`` unless ``mask`` is a bool array ``(N, 1 or C, H, W)`` for ``x``."""
    n, c, h, w = x.shape
    if mask.dtype != bool or mask.shape not in ((n, 1, h, w), (n, c, h, w)):
        raise ValueError(
            f"{owner}: mask must be a bool array of shape ({n}, 1, {h}, {w}) or ({n}, {c}, {h}, "
            f"{w}) (True = removed), got {mask.dtype} of shape {mask.shape}"
        )


def noisy_linear_imputation(
    x: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator | int | None = None,
    *,
    noise: float = 0.01,
) -> np.ndarray:
    """The images ``x`` ``(N, C, H, W)`` with the entries under ``mask`` (bool ``(N, 1 or C, H,
    W)``, True = removed; a one-channel mask removes a pixel in every channel) replaced by noisy
    linear imputation (see :mod:`npxai.metrics.road`): ``v_p + noise * z_p``, ``z =
    rng.standard_normal(x.shape)`` (``rng`` a generator or a seed), in ``x``'s dtype. A
    (sample, mask channel) with every pixel removed becomes ``noise * z`` (its linear
    imputation is 0, see :func:`linear_imputation`). Quantus's ``noisy_linear_imputation``
    takes one image and flat pixel indices instead of a mask, and draws its noise from
    ``np.random``."""
    owner = "noisy_linear_imputation"
    x = np.asarray(x)
    mask = np.asarray(mask)
    check_images(x, owner)
    check_mask(x, mask, owner)
    if x.dtype.kind != "f":
        raise TypeError(f"{owner}: x must be a float array, got {x.dtype}")
    noise = finite_number(noise, f"{owner}: noise", minimum=0)
    if not isinstance(rng, np.random.Generator):
        rng = optional_seed(rng, f"{owner}: rng")
    z = np.random.default_rng(rng).standard_normal(x.shape)
    imputed = linear_imputation(x.astype(np.float64), mask)
    return noisy(imputed, mask, z, noise).astype(x.dtype)


def check_percentages(percentages: Any, owner: str) -> np.ndarray:
    """``percentages`` as a float array of numbers ``0 <= p < 100``, else ``ValueError``."""
    name = f"{owner}: percentages"
    values = list(percentages) if isinstance(percentages, Iterable) else None
    if not values:
        raise ValueError(
            f"{name} must be a non-empty sequence of numbers, got {shown(percentages)}"
        )
    for p in values:
        if finite_number(p, name) < 0 or p >= 100:
            raise ValueError(
                f"{name} must lie in [0, 100) (100 would remove every pixel, leaving nothing to "
                f"impute from), got {shown(p)}"
            )
    return np.asarray(values, dtype=np.float64)


def road(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    percentages: Iterable[float] = range(1, 100, 2),
    order: str = "morf",
    noise: float = 0.01,
    batch_size: int | None = None,
    seed: int | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """ROAD's accuracy curves: ``(N, P)``, entry ``[n, i]`` 1.0 if the model's arg-max class of
    sample ``n`` with its ``k_i = int(F * p_i / 100)`` first features replaced by noisy linear
    imputation is still the target ``t_n``, else 0.0 (``P = len(percentages)``, ``F`` the number
    of attribution entries per sample).

    ``curve.mean(axis=0)`` is the paper's (and Quantus's ``ROAD``) accuracy per percentage:
    with ``order="morf"`` (most relevant first) lower is better, with ``"lerf"`` (least relevant
    first) higher is better. A feature is an attribution entry: a channel-summed map ``(N, 1, H,
    W)`` removes whole pixels (all channels), a map ``(N, C, H, W)`` single channel entries, each
    channel imputed from its own kept entries. The features are ranked by a stable sort of the
    attribution (descending for ``"morf"``, ascending for ``"lerf"``; ties by position).

    Defaults are Quantus 0.6.0's: ``percentages = 1, 3, ..., 99``, ``noise = 0.01``, MoRF.
    ``z`` of the row of sample ``n`` at percentage ``i`` is ``np.random.default_rng(child)
    .standard_normal((C, H, W))``, ``child = np.random.SeedSequence(seed).spawn(N * P)[n * P +
    i]`` (the same whatever ``batch_size``). The imputed inputs run through the model
    ``batch_size`` rows per call, each batch's linear systems solved as one.

    Differences from Quantus: the target defaults to the model's arg-max class (Quantus requires
    labels ``y_batch``); no ``softmax`` argument (the arg-max is the same for scores and
    probabilities); LeRF is offered; a percentage must lie in ``[0, 100)``; Quantus ranks the
    attribution broadcast to the input's shape but indexes pixels with those ranks, so it fails
    (or perturbs the wrong pixels) on images of more than one channel, and averages only the
    first ``batch_size`` samples; it draws its noise from ``np.random`` and ranks ties by an
    unstable ``np.argsort``.
    """
    owner = "road"
    order = check_choice(order, ("morf", "lerf"), f"{owner}: order")
    percentages = check_percentages(percentages, owner)
    noise = finite_number(noise, f"{owner}: noise", minimum=0)
    seed = optional_seed(seed, f"{owner}: seed")
    inputs = prepare(owner, model, x, attribution, target, batch_size=batch_size, backend=backend)
    x, attribution = inputs.x, inputs.attribution
    check_images(x, owner)
    if attribution.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"{owner}: attribution of shape {attribution.shape} must map every pixel of the "
            f"images {x.shape}: ({len(x)}, 1 or {x.shape[1]}, {x.shape[2]}, {x.shape[3]})"
        )
    if inputs.target.ndim != 1:
        raise ValueError(f"{owner}: target must be class indices, not per-class weights")
    n, p = len(x), len(percentages)
    flat = attribution.reshape(n, -1)
    ranked = np.argsort(-flat if order == "morf" else flat, axis=1, kind="stable")
    rank = np.empty_like(ranked)
    np.put_along_axis(rank, ranked, np.arange(flat.shape[1]), axis=1)
    rank = rank.reshape(attribution.shape)
    removed = np.array([int(flat.shape[1] * q / 100) for q in percentages])
    children = np.random.SeedSequence(seed).spawn(n * p)

    def make_rows(rows: np.ndarray) -> np.ndarray:
        samples, steps = np.divmod(rows, p)
        mask = rank[samples] < removed[steps, None, None, None]
        z = np.stack(
            [np.random.default_rng(children[r]).standard_normal(x.shape[1:]) for r in rows]
        )
        imputed = linear_imputation(x[samples].astype(np.float64), mask)
        return noisy(imputed, mask, z, noise)

    # explained output of a one-hot arg-max: 1.0 where the predicted class is the target
    hits = replace(inputs, forward=lambda rows: one_hot_argmax(inputs.forward(rows)), softmax=False)
    return hits.evaluate(make_rows, np.repeat(np.arange(n), p)).reshape(n, p)


def one_hot_argmax(scores: np.ndarray) -> np.ndarray:
    """``1.0`` at each row's arg-max (the first of ties), ``0.0`` elsewhere."""
    scores = np.asarray(to_numpy(scores))
    hot = np.zeros(scores.shape)
    hot[np.arange(len(scores)), scores.argmax(axis=1)] = 1.0
    return hot
