"""The interpretable features of the perturbation analyzers: which entries of a sample are kept
or set to the baseline together.

``feature_mask`` is one of

- ``None``: every entry of a sample is a feature (Captum's default);
- integer labels, as Captum's ``feature_mask``: an array of the input's shape ``(N, *sample)`` or
  broadcastable to it (a sample's shape, ``(1, 1, H, W)`` or ``(H, W)`` for images ``(N, C, H,
  W)``: each pixel's channels one feature); fewer axes than the input get leading axes of 1;
- a segmentation function ``segment(sample) -> labels``, called on each sample (its own shape,
  e.g. ``(C, H, W)``) and returning integer labels broadcastable to it, e.g. scikit-image's SLIC:
  ``lambda s: skimage.segmentation.slic(s, n_segments=50, channel_axis=0)``; or
  :func:`grid_mask`'s regular superpixels.

Labels need not be contiguous nor start at 0: the features of a sample are its distinct labels in
increasing order, ``M_n`` of them (``np.unique``), and a label absent from the sample is no
feature. (Captum shifts the labels to start at 0 and takes ``max + 1`` features, an absent label
being a feature that changes nothing; that leaves exact Shapley values of the present features
as they are, but its sampling methods then spend evaluations on it.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..checks import shown

#: What the analyzers take as ``feature_mask`` (see :mod:`npxai.analyzers.features`).
FeatureMask = np.ndarray | Callable[[np.ndarray], np.ndarray] | None


def grid_mask(shape: Sequence[int], size: int | Sequence[int]) -> np.ndarray:
    """Regular superpixels of a sample of ``shape``: cells of ``size`` entries along each axis
    but the first (the channels, kept together), numbered row-major; labels of shape
    ``shape[1:]``. A sample of one axis is cut along it (labels of ``shape``). The last cell
    along an axis is cut at the edge."""
    spatial = tuple(shape[1:]) if len(shape) > 1 else tuple(shape)
    sizes = (size,) * len(spatial) if isinstance(size, int | np.integer) else tuple(size)
    if len(sizes) != len(spatial) or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 1 for s in sizes
    ):
        raise ValueError(
            f"grid_mask: size must be a positive int or one per axis {spatial}, got {shown(size)}"
        )
    cells = [np.arange(d) // s for d, s in zip(spatial, sizes, strict=True)]
    counts = [-(-d // s) for d, s in zip(spatial, sizes, strict=True)]
    return np.ravel_multi_index(np.meshgrid(*cells, indexing="ij"), counts).astype(np.int64)


def check_feature_mask(feature_mask: Any, owner: str) -> FeatureMask:
    """The constructor's check: ``None``, a callable, or an array of integer labels (its shape
    is checked against the input at the call)."""
    if feature_mask is None or callable(feature_mask):
        return feature_mask
    mask = np.asarray(feature_mask)
    if mask.dtype.kind not in "iu":
        raise TypeError(
            f"{owner}: feature_mask must hold integer labels, got {mask.dtype} {mask.shape}"
        )
    return mask


def _labels(mask: Any, shape: tuple[int, ...], owner: str, what: str) -> np.ndarray:
    """``mask`` checked (integers, broadcastable to ``shape``) and broadcast to it."""
    mask = np.asarray(mask)
    if mask.dtype.kind not in "iu":
        raise TypeError(f"{owner}: {what} must hold integer labels, got {mask.dtype} {mask.shape}")
    try:
        if mask.ndim > len(shape):
            raise ValueError
        return np.broadcast_to(mask.reshape((1,) * (len(shape) - mask.ndim) + mask.shape), shape)
    except ValueError:
        raise ValueError(
            f"{owner}: {what} of shape {mask.shape} does not cover the input {shape}: give "
            "labels of its shape or broadcastable to it (e.g. (1, 1, H, W) for images)"
        ) from None


def feature_labels(
    feature_mask: FeatureMask, x: np.ndarray, owner: str
) -> tuple[np.ndarray, np.ndarray]:
    """The features of each sample of ``x`` (see :mod:`npxai.analyzers.features`): labels
    ``(N, D)`` int64 (entry ``i`` of the flattened sample ``n`` in feature ``0..M_n - 1``) and the
    counts ``M_n`` ``(N,)``."""
    n, size = len(x), x[0].size
    if feature_mask is None:
        return np.broadcast_to(np.arange(size), (n, size)), np.full(n, size)
    if callable(feature_mask):
        masks = [_labels(feature_mask(sample), x.shape[1:], owner, "the segmentation function's "
                         f"labels for sample {i}") for i, sample in enumerate(x)]  # fmt: skip
        mask = np.stack(masks)
    else:
        mask = _labels(feature_mask, x.shape, owner, "feature_mask")
    if mask.strides[0] == 0:  # one mask for every sample
        features, labels = np.unique(mask[0], return_inverse=True)
        return np.broadcast_to(labels.reshape(1, size), (n, size)), np.full(n, len(features))
    rows = [np.unique(m, return_inverse=True) for m in mask]
    labels = np.stack([inverse.reshape(size) for _, inverse in rows])
    return labels.astype(np.int64), np.array([len(features) for features, _ in rows])
