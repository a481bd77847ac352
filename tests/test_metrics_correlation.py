"""Faithfulness correlation against Quantus 0.6.0 (fed the same subsets), a hand-written NumPy
computation with scipy's correlations, a linear model's exact answer, and bad input."""

import numpy as np
import pytest
import quantus
import scipy.stats
import torch

from npxai.metrics.correlation import faithfulness_correlation

DTYPES = [np.float32, np.float64]


def subsets(seed, count, features, size):
    """The subsets the metric draws, in its documented order (run-major)."""
    rng = np.random.default_rng(seed)
    return [rng.choice(features, size, replace=False) for _ in range(count)]


def torch_model(dtype=torch.float32):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(64, 3)
    )
    return model.to(dtype).eval()


@pytest.mark.parametrize("softmax", [False, True])
def test_faithfulness_correlation_is_quantus_given_the_same_subsets(monkeypatch, softmax):
    rng = np.random.default_rng(0)
    x = rng.random((5, 3, 6, 6)).astype(np.float32)
    attribution = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    model = torch_model()
    target = np.array([0, 1, 2, 0, 1])
    # the torch model itself runs both sides, so only the metrics' arithmetic is compared
    forward = lambda rows: model(torch.from_numpy(rows)).detach().numpy()  # noqa: E731
    ours = faithfulness_correlation(
        forward, x, attribution, target, nr_runs=30, subset_size=30, seed=3, softmax=softmax
    )
    draws = iter(subsets(3, 30 * 5, 108, 30))
    monkeypatch.setattr(np.random, "choice", lambda *args, **kwargs: next(draws))
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=30, subset_size=30, return_aggregate=False, disable_warnings=True
    )
    theirs = metric(model, x, target, attribution, softmax=softmax)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert np.ptp(ours) > 0.1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("imputer", ["black", "white", "mean", 0.25])
def test_a_channel_summed_map_against_numpy_and_scipy(dtype, imputer):
    """A feature is a pixel: all its channels replaced, its attribution counted once."""
    rng = np.random.default_rng(1)
    x = rng.random((3, 3, 6, 6)).astype(dtype)
    attribution = rng.standard_normal((3, 1, 6, 6))
    model = torch_model(torch.float64)
    forward = lambda rows: model(torch.from_numpy(rows.astype(np.float64))).detach().numpy()  # noqa: E731
    kwargs = dict(nr_runs=12, subset_size=9, seed=5, imputer=imputer, softmax=True)
    pearson = faithfulness_correlation(forward, x, attribution, [2, 0, 1], **kwargs)
    spearman = faithfulness_correlation(
        forward, x, attribution, [2, 0, 1], similarity="spearman", **kwargs
    )
    draws = subsets(5, 12 * 3, 36, 9)

    def probabilities(rows):  # the metric reads a callable's scores in the input's dtype
        scores = model(torch.from_numpy(rows)).detach().numpy().astype(dtype)
        return torch.softmax(torch.from_numpy(scores.astype(np.float64)), 1).numpy()

    for n, t in enumerate([2, 0, 1]):
        sample = x[n].astype(np.float64)
        value = {"black": sample.min(), "white": sample.max(), "mean": sample.mean()}.get(imputer)
        sums, drops = [], []
        for run in range(12):
            chosen = draws[run * 3 + n]
            pixels = np.zeros(36, bool)
            pixels[chosen] = True
            perturbed = sample.copy()
            perturbed[:, pixels.reshape(6, 6)] = imputer if value is None else value
            perturbed = perturbed.astype(dtype).astype(np.float64)[None]
            drops.append(
                probabilities(sample.astype(dtype).astype(np.float64)[None])[0, t]
                - probabilities(perturbed)[0, t]
            )
            sums.append(attribution[n, 0].ravel()[chosen].sum())
        assert pearson[n] == pytest.approx(scipy.stats.pearsonr(sums, drops)[0], abs=1e-12)
        assert spearman[n] == pytest.approx(scipy.stats.spearmanr(sums, drops)[0], abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_linear_model_with_its_exact_attribution_correlates_exactly(dtype):
    """f(x) = w.x, g = w * (x - b), b the black baseline (the sample's minimum): the drop of
    replacing S by b is sum_{i in S} w_i (x_i - b), the attribution summed over S, so r = 1."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal(20)
    x = rng.random((4, 20)).astype(dtype)
    model = lambda rows: np.stack([rows @ w, -(rows @ w)], axis=1)  # noqa: E731
    g = w * (x.astype(np.float64) - x.min(axis=1, keepdims=True))
    r = faithfulness_correlation(model, x, g, 0, nr_runs=10, subset_size=5, seed=0)
    tolerance = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(r, 1.0, rtol=0, atol=tolerance)
    r = faithfulness_correlation(model, x, -g, 0, nr_runs=10, subset_size=5, seed=0)
    np.testing.assert_allclose(r, -1.0, rtol=0, atol=tolerance)
    assert np.isnan(faithfulness_correlation(model, x, 0 * g, 0, nr_runs=3, subset_size=2)).all()


def test_bad_input():
    x = np.zeros((2, 1, 3, 3))
    model = lambda rows: rows.reshape(len(rows), -1)  # noqa: E731
    a = np.ones((2, 1, 3, 3))
    with pytest.raises(ValueError, match="attribution of shape"):
        faithfulness_correlation(model, x, np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="subset_size must be below the 9 features"):
        faithfulness_correlation(model, x, a, subset_size=9)
    with pytest.raises(ValueError, match="subset_size must be a positive int"):
        faithfulness_correlation(model, x, a, subset_size=0)
    with pytest.raises(ValueError, match="nr_runs must be a positive int"):
        faithfulness_correlation(model, x, a, nr_runs=0, subset_size=2)
    with pytest.raises(ValueError, match="nr_runs must be at least 2"):
        faithfulness_correlation(model, x, a, nr_runs=1, subset_size=2)
    with pytest.raises(ValueError, match="similarity must be one of 'pearson', 'spearman'"):
        faithfulness_correlation(model, x, a, subset_size=2, similarity="kendall")
    with pytest.raises(ValueError, match="imputer must be a finite number, one of 'black'"):
        faithfulness_correlation(model, x, a, subset_size=2, imputer="blurry")
    with pytest.raises(ValueError, match="imputer must be a finite number"):
        faithfulness_correlation(model, x, a, subset_size=2, imputer=float("nan"))
    with pytest.raises(ValueError, match=r"must return numbers of x's shape \(2, 1, 3, 3\)"):
        faithfulness_correlation(model, x, a, subset_size=2, imputer=lambda x: x[:, 0])
