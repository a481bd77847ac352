"""ROAD and its noisy linear imputation against Quantus 0.6.0 (given the same noise draws), a
linear ramp and a constant image, and bad input."""

import numpy as np
import pytest
import quantus
import torch
from quantus.functions.perturb_func import noisy_linear_imputation as quantus_imputation

import npxai
from npxai.metrics.road import noisy_linear_imputation, road

DTYPES = [np.float32, np.float64]


def fed_randn(monkeypatch, z, indices):
    """Quantus draws its noise as ``np.random.randn(C, k)`` (or ``(k,)`` for one channel) for
    the pixels ``indices`` in their given order: feed it ``z`` (C, H*W) at those pixels."""
    monkeypatch.setattr(np.random, "randn", lambda *shape: z[:, indices].reshape(shape))


@pytest.mark.parametrize("channels", [1, 3])
def test_imputation_is_quantus_given_the_same_noise(monkeypatch, channels):
    rng = np.random.default_rng(channels)
    x = rng.random((2, channels, 7, 9))
    mask = rng.random((2, 1, 7, 9)) < 0.4
    ours = noisy_linear_imputation(x, mask, 5, noise=0.3)
    z = np.random.default_rng(5).standard_normal(x.shape)
    for n in range(2):
        indices = rng.permutation(np.flatnonzero(mask[n, 0]))  # Quantus takes any order
        fed_randn(monkeypatch, z[n].reshape(channels, -1), indices)
        theirs = quantus_imputation(x[n], indices, noise=0.3)
        np.testing.assert_allclose(ours[n], theirs, rtol=0, atol=1e-12)
    assert np.abs(ours - x).max() > 0.1


def test_a_channel_mask_imputes_each_channel_from_its_own_kept_pixels():
    rng = np.random.default_rng(3)
    x = rng.random((1, 3, 6, 6))
    mask = rng.random((1, 3, 6, 6)) < 0.5
    ours = noisy_linear_imputation(x, mask, noise=0.0)
    for c in range(3):
        indices = np.flatnonzero(mask[0, c])
        theirs = quantus_imputation(x[0, c : c + 1], indices, noise=0.0)
        np.testing.assert_allclose(ours[0, c : c + 1], theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_ramp_is_reproduced_inside_and_a_constant_stays_constant(dtype):
    i, j = np.mgrid[:8, :10]
    ramp = (0.3 * i - 0.2 * j + 1.5).astype(dtype)[None, None]
    mask = np.zeros((1, 1, 8, 10), bool)
    mask[0, 0, 2:6, 3:8] = True  # no removed pixel on the border: all 8 neighbours inside
    mask[0, 0, 1, 1] = True
    imputed = noisy_linear_imputation(ramp, mask, noise=0.0)
    assert imputed.dtype == dtype
    # the weighted mean of a linear function over symmetric neighbours is its centre value
    np.testing.assert_allclose(imputed, ramp, rtol=0, atol=10 * np.finfo(dtype).eps)
    constant = np.full((1, 2, 5, 5), 0.7, dtype)
    corner = np.zeros((1, 1, 5, 5), bool)
    corner[0, 0, :3, :4] = True  # touching the border: fewer neighbours, still their mean
    out = noisy_linear_imputation(constant, corner, noise=0.0)
    np.testing.assert_allclose(out, constant, rtol=0, atol=10 * np.finfo(dtype).eps)


def test_one_interior_pixel_is_the_weighted_mean_of_its_neighbours_plus_noise():
    x = np.random.default_rng(4).random((1, 1, 5, 5))
    mask = np.zeros((1, 1, 5, 5), bool)
    mask[0, 0, 2, 3] = True
    near = x[0, 0, 1:4, 2:5]
    mean = (near[[0, 1, 1, 2], [1, 0, 2, 1]].sum() / 6) + (
        near[[0, 0, 2, 2], [0, 2, 0, 2]].sum() / 12
    )
    z = np.random.default_rng(9).standard_normal(x.shape)[0, 0, 2, 3]
    out = noisy_linear_imputation(x, mask, 9, noise=0.25)
    assert out[0, 0, 2, 3] == pytest.approx(mean + 0.25 * z, abs=1e-14)
    np.testing.assert_array_equal(np.delete(out.ravel(), 13), np.delete(x.ravel(), 13))


def tiny_model(channels, dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 3),
    )
    return model.to(getattr(torch, np.dtype(dtype).name)).eval()


def test_road_is_quantus_given_the_same_noise(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 8, 8)).astype(np.float32)
    attribution = rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    model = tiny_model(1, np.float32)
    target = model(torch.from_numpy(x)).argmax(1).numpy()
    percentages = [5, 20, 50, 90]
    curve = road(model, x, attribution, target, percentages=percentages, noise=0.5, seed=7)
    children = np.random.SeedSequence(7).spawn(6 * 4)
    for n in range(6):
        draws = iter(
            np.random.default_rng(children[n * 4 + i]).standard_normal((1, 64)) for i in range(4)
        )

        def perturb(arr, indices, noise, draws=draws):
            fed_randn(monkeypatch, next(draws), indices)
            return quantus_imputation(arr, indices, noise)

        metric = quantus.ROAD(
            percentages=percentages, noise=0.5, perturb_func=perturb, disable_warnings=True
        )
        theirs = metric(
            model, x[n : n + 1], target[n : n + 1], attribution[n : n + 1], softmax=False
        )
        np.testing.assert_array_equal(curve[n], [theirs[p] for p in percentages])
    assert 0 < curve.mean() < 1  # some samples keep their class, some lose it


@pytest.mark.parametrize("dtype", DTYPES)
def test_road_lerf_and_channels(dtype):
    """Three channels (Quantus fails there) against the imputation itself: the curve is whether
    the arg-max of the imputed image, built here from the documented draws, is the target."""
    rng = np.random.default_rng(1)
    x = rng.random((3, 3, 8, 8)).astype(dtype)
    attribution = rng.standard_normal((3, 1, 8, 8))
    model = tiny_model(3, dtype)
    percentages = [10, 60]
    curve = road(model, x, attribution, percentages=percentages, order="lerf", seed=2, noise=0.4)
    net = npxai.from_torch(model)
    target = net(x).argmax(1)
    children = np.random.SeedSequence(2).spawn(6)
    for n in range(3):
        ranks = np.argsort(np.argsort(attribution[n].ravel())).reshape(1, 1, 8, 8)
        for i, p in enumerate(percentages):
            mask = ranks < int(64 * p / 100)
            imputed = noisy_linear_imputation(
                x[n : n + 1], mask, np.random.default_rng(children[n * 2 + i]), noise=0.4
            )
            assert curve[n, i] == float(net(imputed).argmax(1)[0] == target[n])
    assert curve.dtype == np.float64 and curve.shape == (3, 2)


def test_bad_input():
    x = np.zeros((2, 1, 4, 4))
    model = lambda rows: rows.reshape(len(rows), -1)[:, :3]  # noqa: E731
    a = np.ones((2, 1, 4, 4))
    with pytest.raises(ValueError, match="attribution of shape"):
        road(model, x, np.ones((2, 1, 4)))
    with pytest.raises(ValueError, match="must map every pixel"):
        road(model, x, np.ones((2, 1, 1, 4)))
    with pytest.raises(ValueError, match=r"percentages must lie in \[0, 100\)"):
        road(model, x, a, percentages=[10, 100])
    with pytest.raises(ValueError, match="percentages must be a finite number"):
        road(model, x, a, percentages=[float("nan")])
    with pytest.raises(ValueError, match="percentages must be a non-empty"):
        road(model, x, a, percentages=[])
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        road(model, x, a, noise=-1)
    with pytest.raises(ValueError, match="order must be one of 'morf', 'lerf'"):
        road(model, x, a, order="random")
    with pytest.raises(ValueError, match="x must be a batch of images"):
        road(lambda r: r[:, :3], np.zeros((2, 16)), np.ones((2, 16)))
    with pytest.raises(ValueError, match="target must be class indices"):
        road(model, x, a, np.ones((2, 3)))
    with pytest.raises(ValueError, match="mask must be a bool array of shape"):
        noisy_linear_imputation(x, np.ones((2, 2, 4, 4), bool))
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        noisy_linear_imputation(x, x > 0, noise=float("inf"))
    with pytest.raises(ValueError, match="rng must be an int >= 0 or None"):
        noisy_linear_imputation(x, x > 0, rng=-3)


def test_a_channel_with_every_pixel_removed_gets_the_minimum_norm_solution_zero():
    # its system is singular (every constant solves it); sample 0, untouched, keeps its values
    x = np.random.default_rng(3).normal(size=(2, 2, 4, 4))
    mask = np.arange(32).reshape(2, 1, 4, 4) >= 16
    out = noisy_linear_imputation(x, mask, noise=0.0)
    np.testing.assert_array_equal(out[0], x[0])
    np.testing.assert_array_equal(out[1], 0.0)
    z = np.random.default_rng(4).standard_normal(x.shape)
    noisy = noisy_linear_imputation(x, mask, 4, noise=0.5)
    np.testing.assert_allclose(noisy[1], 0.5 * z[1], rtol=0, atol=1e-15)
