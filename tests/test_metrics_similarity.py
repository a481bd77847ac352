"""The similarity measures of npxai.metrics.similarity against scipy and scikit-image (oracles),
sample by sample, on random maps of a few sizes."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.feature import hog as skimage_hog
from skimage.metrics import structural_similarity

from npxai.metrics.similarity import hog, hog_similarity, spearman, ssim

seeds = st.integers(0, 2**32 - 1)


def maps(seed: int, shape: tuple[int, ...], ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated batches of random maps; ``ties``: values on a coarse grid (many ties)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=shape)
    b = a + rng.normal(size=shape)
    return (np.round(a), np.round(b)) if ties else (a, b)


@settings(max_examples=6, deadline=None)
@given(seeds, st.sampled_from([(3, 7, 9), (2, 16, 16), (4, 50), (2, 3, 5, 6)]), st.booleans())
def test_spearman_is_scipys(seed, shape, ties):
    a, b = maps(seed, shape, ties)
    expected = [scipy.stats.spearmanr(u.ravel(), v.ravel())[0] for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(spearman(a, b), expected, rtol=0, atol=1e-10)


@settings(max_examples=6, deadline=None)
@given(
    seeds, st.sampled_from([(3, 7, 9), (2, 16, 23), (2, 60), (2, 9, 8, 7)]), st.sampled_from([3, 7])
)
def test_ssim_is_skimages_as_quantus_calls_it(seed, shape, win_size):
    a, b = maps(seed, shape)
    expected = []
    for u, v in zip(a, b, strict=True):  # quantus.functions.similarity_func.ssim's data_range
        data_range = float(np.abs(np.max([u, v]) - np.min([u, v])))
        expected.append(structural_similarity(u, v, win_size=win_size, data_range=data_range))
    np.testing.assert_allclose(ssim(a, b, win_size=win_size), expected, rtol=0, atol=1e-10)


@settings(max_examples=6, deadline=None)
@given(
    seeds,
    st.sampled_from([(2, 24, 24), (3, 37, 29), (1, 64, 48)]),
    st.sampled_from([(9, (8, 8), (3, 3)), (7, (5, 6), (2, 3)), (4, (3, 3), (1, 1))]),
)
def test_hog_is_skimages(seed, shape, parameters):
    a, b = maps(seed, shape)
    orientations, cell, block = parameters
    expected = np.stack([skimage_hog(u, orientations, cell, block) for u in a])
    np.testing.assert_allclose(hog(a, orientations, cell, block), expected, rtol=0, atol=1e-10)
    pearson = [
        scipy.stats.pearsonr(
            skimage_hog(u, orientations, cell, block), skimage_hog(v, orientations, cell, block)
        )[0]
        for u, v in zip(a, b, strict=True)
    ]
    kwargs = dict(orientations=orientations, pixels_per_cell=cell, cells_per_block=block)
    np.testing.assert_allclose(hog_similarity(a, b, **kwargs), pearson, rtol=0, atol=1e-10)


def test_hog_similarity_takes_a_channel_summed_map():
    a, b = maps(0, (2, 1, 24, 32))
    np.testing.assert_array_equal(hog_similarity(a, b), hog_similarity(a[:, 0], b[:, 0]))


def test_identical_maps_are_similar_exactly():
    a, _ = maps(1, (2, 24, 24))
    np.testing.assert_array_equal(spearman(a, a), 1.0)
    np.testing.assert_allclose(ssim(a, a), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(hog_similarity(a, a), 1.0, rtol=0, atol=1e-15)


def test_bad_input():
    a, b = maps(0, (2, 6, 6))
    with pytest.raises(ValueError, match=r"spearman: a and b must be batches .* \(2, 6, 6\) and"):
        spearman(a, b[:, :5])
    with pytest.raises(ValueError, match=r"ssim: win_size must be odd and at most .* got 7"):
        ssim(a, b)
    with pytest.raises(ValueError, match=r"ssim: win_size must be odd .* got 4"):
        ssim(a, b, win_size=4)
    with pytest.raises(ValueError, match=r"hog_similarity: a and b must be 2-D maps .* 24 x 24"):
        hog_similarity(a, b)
    c, d = maps(0, (2, 3, 24, 24))
    with pytest.raises(ValueError, match=r"hog_similarity: a and b must be 2-D maps"):
        hog_similarity(c, d)
