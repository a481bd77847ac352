"""Similarities of two batches of explanations, sample by sample, as the randomisation tests
(:mod:`npxai.metrics.randomisation`) compare them: each takes ``a`` and ``b`` of one shape
``(N, *d)`` and returns ``(N,)`` in float64, the value of sample ``n`` comparing ``a[n]`` with
``b[n]``.

- :func:`spearman`: Spearman's rank correlation of the flattened samples
  (``scipy.stats.spearmanr``);
- :func:`ssim`: the structural similarity of ``skimage.metrics.structural_similarity`` as Quantus
  calls it (its ``similarity_func.ssim``: uniform window, ``data_range`` from the pair);
- :func:`hog_similarity`: the Pearson correlation of the two maps' histograms of oriented
  gradients (``skimage.feature.hog``), the HOG similarity of Adebayo et al. (2018).

NumPy and SciPy only (scikit-image is the tests' oracle, not a dependency).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import rankdata

from ..checks import positive_int


def pair(a: np.ndarray, b: np.ndarray, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as float64 arrays of one shape ``(N, *d)``, else ``ValueError``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"{owner}: a and b must be batches (N, ...) of one shape, got {a.shape} and {b.shape}"
        )
    return a, b


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's correlation of each row of ``a`` (``(N, F)``) with the same row of ``b``:
    ``sum (a - mean a)(b - mean b) / sqrt(sum (a - mean a)^2 sum (b - mean b)^2)``; NaN for a
    constant row (as scipy)."""
    da = a - a.mean(axis=1, keepdims=True)
    db = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (da * db).sum(axis=1) / np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation ``rho_n = pearson(rank(a_n), rank(b_n))`` of each sample's
    flattened entries, ties given their average rank: ``scipy.stats.spearmanr(a[n].ravel(),
    b[n].ravel())[0]``, and what Quantus's ``correlation_spearman(..., batched=True)`` returns
    (it gets there through the full ``2N x 2N`` correlation matrix). NaN where a sample is
    constant."""
    a, b = pair(a, b, "spearman")
    n = len(a)
    ranks_a = rankdata(a.reshape(n, -1), axis=1)
    ranks_b = rankdata(b.reshape(n, -1), axis=1)
    return pearson_rows(ranks_a, ranks_b)


def window_means(image: np.ndarray, size: int) -> np.ndarray:
    """The mean of every ``size``-wide window along each sample axis of ``image`` (``(N, *d)``,
    the valid windows only: shape ``(N, *(d_i - size + 1))``)."""
    for axis in range(1, image.ndim):
        image = sliding_window_view(image, size, axis=axis).sum(axis=-1)
    return image / size ** (image.ndim - 1)


def ssim(a: np.ndarray, b: np.ndarray, *, win_size: int = 7) -> np.ndarray:
    """The mean structural similarity of each sample pair (Wang et al. 2004), as
    ``skimage.metrics.structural_similarity(a[n], b[n], win_size=win_size,
    data_range=max(a_n, b_n) - min(a_n, b_n))`` computes it, which is how Quantus's
    ``similarity_func.ssim`` calls it. Over every window ``w`` of ``win_size`` entries along
    each of the ``k = a.ndim - 1`` sample axes (the valid windows, the ones skimage averages after
    cropping ``(win_size - 1) / 2`` from each border), with ``P = win_size^k`` entries::

        SSIM(w) = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))

    ``mu`` the window means, ``s`` the sample (co)variances (factor ``P / (P - 1)``),
    ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``, ``R`` the pair's data range; the result is the mean
    over the windows. In float64 whatever the input dtype (skimage keeps float32 in float32).
    NaN for a constant pair (``R = 0``), as skimage. ``win_size`` must be odd and fit every axis.
    """
    a, b = pair(a, b, "ssim")
    win_size = positive_int(win_size, "ssim: win_size")
    if win_size % 2 == 0 or win_size > min(a.shape[1:]):
        raise ValueError(
            f"ssim: win_size must be odd and at most the smallest sample axis "
            f"({min(a.shape[1:])} of {a.shape[1:]}), got {win_size}"
        )
    axes = tuple(range(1, a.ndim))
    size = win_size ** len(axes)
    cov_norm = size / (size - 1)
    data_range = np.maximum(a.max(axis=axes), b.max(axis=axes))
    data_range = data_range - np.minimum(a.min(axis=axes), b.min(axis=axes))
    shape = (-1,) + (1,) * len(axes)
    c1 = ((0.01 * data_range) ** 2).reshape(shape)
    c2 = ((0.03 * data_range) ** 2).reshape(shape)
    mu_a, mu_b = window_means(a, win_size), window_means(b, win_size)
    var_a = cov_norm * (window_means(a * a, win_size) - mu_a * mu_a)
    var_b = cov_norm * (window_means(b * b, win_size) - mu_b * mu_b)
    cov = cov_norm * (window_means(a * b, win_size) - mu_a * mu_b)
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (numerator / denominator).mean(axis=axes)


def hog(
    images: np.ndarray,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (3, 3),
) -> np.ndarray:
    """The histogram-of-oriented-gradients descriptor of each 2-D map of ``images`` (``(N, H,
    W)``), ``(N, F)``: ``skimage.feature.hog(images[n], orientations, pixels_per_cell,
    cells_per_block, block_norm="L2-Hys")`` (Dalal and Triggs 2005), step by step as skimage:

    1. gradients ``g_r = I[r+1, c] - I[r-1, c]`` and ``g_c = I[r, c+1] - I[r, c-1]`` (0 on the
       border rows and columns), magnitude ``|g| = hypot(g_c, g_r)``, unsigned orientation
       ``theta = degrees(atan2(g_r, g_c)) mod 180``;
    2. per cell of ``pixels_per_cell`` (the ``H // c_r`` by ``W // c_c`` whole cells from the top
       left) and orientation bin ``i``, ``[180 i / B, 180 (i + 1) / B)``: the mean of ``|g|`` over
       the cell's pixels whose ``theta`` falls in the bin (no interpolation between bins). As
       skimage's Cython kernel does, the sum runs in float32 in row-major order and the bin edges
       are float32;
    3. per block of ``cells_per_block`` cells (every position, stride one cell), L2-Hys:
       ``v / sqrt(|v|^2 + eps^2)``, clipped at 0.2, then normalised again, ``eps = 1e-5``;
    4. the blocks flattened in order ``(block row, block column, cell row, cell column, bin)``.
    """
    images = np.asarray(images, np.float64)
    n, height, width = images.shape
    cell_r, cell_c = pixels_per_cell
    block_r, block_c = cells_per_block
    cells_r, cells_c = height // cell_r, width // cell_c
    g_r = np.zeros_like(images)
    g_c = np.zeros_like(images)
    g_r[:, 1:-1, :] = images[:, 2:, :] - images[:, :-2, :]
    g_c[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
    magnitude = np.hypot(g_c, g_r)
    theta = np.rad2deg(np.arctan2(g_r, g_c)) % 180
    width_f32 = np.float32(180.0 / orientations)
    edges = np.array([np.float32(width_f32 * np.float32(i)) for i in range(orientations + 1)])
    edges = edges.astype(np.float64)

    def cells(a: np.ndarray) -> np.ndarray:  # (N, H, W) -> (N, cells_r, cells_c, cell_r * cell_c)
        a = a[:, : cells_r * cell_r, : cells_c * cell_c]
        a = a.reshape(n, cells_r, cell_r, cells_c, cell_c).transpose(0, 1, 3, 2, 4)
        return a.reshape(n, cells_r, cells_c, cell_r * cell_c)

    magnitude, theta = cells(magnitude), cells(theta)
    in_bin = (theta[..., None] >= edges[:-1]) & (theta[..., None] < edges[1:])  # (..., P, B)
    votes = np.where(in_bin, magnitude[..., None], 0.0)
    total = np.zeros((n, cells_r, cells_c, orientations), np.float32)
    for pixel in range(cell_r * cell_c):  # skimage's float32 running sum, in its order
        total = (total + votes[..., pixel, :]).astype(np.float32)
    histogram = (total / np.float32(cell_r * cell_c)).astype(np.float64)
    blocks_r, blocks_c = cells_r - block_r + 1, cells_c - block_c + 1
    blocks = sliding_window_view(histogram, (block_r, block_c), axis=(1, 2))
    blocks = blocks.transpose(0, 1, 2, 4, 5, 3).reshape(n, blocks_r, blocks_c, -1)
    eps = 1e-5
    out = blocks / np.sqrt((blocks**2).sum(axis=-1, keepdims=True) + eps**2)
    out = np.minimum(out, 0.2)
    out = out / np.sqrt((out**2).sum(axis=-1, keepdims=True) + eps**2)
    return out.reshape(n, -1)


def hog_similarity(
    a: np.ndarray,
    b: np.ndarray,
    *,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (3, 3),
) -> np.ndarray:
    """``pearson(hog(a_n), hog(b_n))``: the Pearson correlation of the two maps' HOG descriptors
    (:func:`hog`, skimage's defaults), Adebayo et al.'s (2018) HOG similarity (Quantus 0.6.0 has
    none). ``a`` and ``b`` are 2-D maps ``(N, H, W)``, or ``(N, *d)`` with at most two axes of
    ``d`` longer than 1 (a ``(N, 1, H, W)`` channel-summed map); the maps must hold at least one
    block, ``cells_per_block * pixels_per_cell`` pixels along each axis. NaN where a descriptor
    is constant (a map without gradient)."""
    a, b = pair(a, b, "hog_similarity")
    orientations = positive_int(orientations, "hog_similarity: orientations")
    cell = tuple(positive_int(v, "hog_similarity: pixels_per_cell") for v in pixels_per_cell)
    block = tuple(positive_int(v, "hog_similarity: cells_per_block") for v in cells_per_block)
    spatial = [s for s in a.shape[1:] if s > 1]
    least = (cell[0] * block[0], cell[1] * block[1])
    if len(spatial) != 2 or spatial[0] < least[0] or spatial[1] < least[1]:
        raise ValueError(
            f"hog_similarity: a and b must be 2-D maps (N, H, W) of at least {least[0]} x "
            f"{least[1]} pixels (cells_per_block * pixels_per_cell), got samples of shape "
            f"{a.shape[1:]}"
        )
    maps = (len(a), *spatial)
    descriptors_a = hog(a.reshape(maps), orientations, cell, block)
    descriptors_b = hog(b.reshape(maps), orientations, cell, block)
    return pearson_rows(descriptors_a, descriptors_b)
