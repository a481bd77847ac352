"""GradientShap against Captum's ``GradientShap`` run on npxai's documented draws (its
``np.random.choice``, ``np.random.uniform`` and ``torch.normal`` made to return them; float64,
1e-10), against its formula in torch autograd (float64 1e-10, float32 1e-5), on a linear model
(each draw ``w_t * (x~ - b)``: completeness exact), against IntegratedGradients in expectation
(within five standard errors of the Monte-Carlo mean, the spread measured with torch); seeds,
batch sizes, backends; the errors."""

import copy

import numpy as np
import pytest
import torch
from captum.attr import GradientShap as CaptumGradientShap
from conftest import TORCH_DTYPE, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import npxai
from npxai.analyzers.gradient_shap import GradientShap

TARGET = [0, 3, 1]


def torch_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Tanh(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(3 * 3 * 3, 4),
    ).double().eval()  # fmt: skip


@pytest.fixture(scope="module")
def net():
    theirs = torch_net()
    rng = np.random.default_rng(0)
    return (
        theirs,
        npxai.from_torch(theirs),
        rng.standard_normal((3, 2, 6, 6)),
        rng.standard_normal((4, 2, 6, 6)),
    )


def documented_draws(seed: int, n: int, x: np.ndarray, baselines: int, stdevs: float):
    """The docstring's draws: baseline indices ``(n, N)``, alphas ``(n, N)``, noise
    ``(n, *x.shape)`` (zero for ``stdevs == 0``, where none is drawn)."""
    rng = np.random.default_rng(seed)
    chosen = rng.integers(baselines, size=(n, len(x)))
    alphas = rng.random((n, len(x)))
    noise = stdevs * rng.standard_normal((n, *x.shape)) if stdevs > 0 else np.zeros((n, *x.shape))
    return chosen, alphas, noise


def torch_gradient_shap(net, x, baselines, target, chosen, alphas, noise, dtype):
    """``1/n sum_k (x~_k - b_k) * grad f_t(alpha_k x~_k + (1 - alpha_k) b_k)`` in torch."""
    net, total = copy.deepcopy(net).to(dtype), 0  # the caller's net stays float64
    for k in range(len(chosen)):
        noisy = torch.tensor(x + noise[k], dtype=dtype)
        base = torch.tensor(baselines[chosen[k]], dtype=dtype)
        a = torch.tensor(alphas[k], dtype=dtype).reshape(-1, *(1,) * (x.ndim - 1))
        point = (a * noisy + (1 - a) * base).requires_grad_()
        net(point)[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
        total = total + (noisy - base) * point.grad
    return (total / len(chosen)).detach().numpy()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("stdevs", [0.0, 0.3])
def test_gradient_shap_equals_captums_on_the_same_draws(net, monkeypatch, backend, stdevs):
    theirs, ours, x, baselines = net
    n, seed = 6, 11
    chosen, alphas, noise = documented_draws(seed, n, x, len(baselines), stdevs)
    # Captum's draws, sample-major (row i * n + k: draw k of sample i), made npxai's
    monkeypatch.setattr(np.random, "choice", lambda count, size: chosen.T.ravel())
    monkeypatch.setattr(np.random, "uniform", lambda low, high, size: alphas.T.ravel())
    monkeypatch.setattr(torch, "normal", lambda mean, std: torch.tensor(
        noise.swapaxes(0, 1).reshape(std.shape)))  # fmt: skip
    expected = CaptumGradientShap(theirs).attribute(
        torch.tensor(x), torch.tensor(baselines), n_samples=n, stdevs=stdevs, target=TARGET
    ).detach().numpy()  # fmt: skip
    monkeypatch.undo()
    e = GradientShap(ours, baselines, n, stdevs, seed, batch_size=5, backend=backend)(x, TARGET)
    assert_close(e.attribution, expected, np.float64)
    assert e.analyzer == "GradientShap" and e.heatmap_preset == "attribution"
    assert e.extras == {"n_samples": n, "stdevs": stdevs, "baselines": 4}
    again = GradientShap(ours, np.zeros((1, 2, 6, 6)), 2, seed=seed).attribute(
        torch.tensor(x),
        torch.tensor(baselines),
        n_samples=n,
        stdevs=stdevs,
        target=torch.tensor(TARGET),
    )  # Captum's call, its arguments replacing the analyzer's; the same seed, the same draws
    assert_close(again, expected, np.float64)


@settings(max_examples=8, deadline=None)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    n=st.integers(1, 7),
    batch=st.integers(1, 25),
    stdevs=st.sampled_from([0.0, 0.2]),
    seed=st.integers(0, 2**31),
    target=st.sampled_from([None, 2, TARGET]),
)
def test_gradient_shap_is_its_formula_in_torch(net, dtype, n, batch, stdevs, seed, target):
    theirs, ours, x, baselines = net
    x = x.astype(dtype)
    e = GradientShap(ours, baselines, n, stdevs, seed, batch_size=batch)(x, target)
    assert e.attribution.dtype == dtype
    clean = theirs(torch.tensor(x, dtype=torch.float64)).argmax(1).numpy()
    chosen, alphas, noise = documented_draws(seed, n, x, len(baselines), stdevs)
    expected = torch_gradient_shap(theirs, x, baselines.astype(dtype), clean if target is None
                                   else target, chosen, alphas, noise.astype(dtype),
                                   TORCH_DTYPE[dtype])  # fmt: skip
    assert_close(e.attribution, expected, dtype)
    np.testing.assert_array_equal(e.target, clean if target is None else np.broadcast_to(target, 3))
    again = GradientShap(ours, baselines, n, stdevs, seed, batch_size=64, backend="numba")
    assert_close(again(x, target).attribution, e.attribution, dtype)


def test_seeded_runs_repeat_and_seeds_differ(net):
    _, ours, x, baselines = net
    first = GradientShap(ours, baselines, 5, 0.1, seed=4)(x, TARGET).attribution
    np.testing.assert_array_equal(GradientShap(ours, baselines, 5, 0.1, 4)(x, TARGET).attribution,
                                  first)  # fmt: skip
    other = GradientShap(ours, baselines, 5, 0.1, seed=5)(x, TARGET).attribution
    assert not np.allclose(other, first)


def test_on_a_linear_model_each_draw_is_w_times_the_difference_and_complete():
    npxai.manual_seed(1)
    linear = npxai.Sequential(npxai.layers.Linear(12, 3))
    w, c = linear[0].weight, linear[0].bias
    rng = np.random.default_rng(2)
    x, baselines = rng.standard_normal((5, 12)), rng.standard_normal((6, 12))
    n, seed = 9, 3
    # one baseline: every alpha gives w_t * (x - b), whatever the draws
    e = GradientShap(linear, baselines[:1], n, seed=seed)(x, 2)
    assert_close(e.attribution, w[2] * (x - baselines[0]), np.float64)
    # a set, with noise: w_t * (x + mean noise - mean of the drawn baselines)
    chosen, _, noise = documented_draws(seed, n, x, 6, 0.4)
    e = GradientShap(linear, baselines, n, 0.4, seed, batch_size=7)(x, 2)
    expected = w[2] * (x + noise.mean(0) - baselines[chosen].mean(0))
    assert_close(e.attribution, expected, np.float64)
    # completeness, without noise: sum R = f_t(x) - mean_k f_t(b_k)
    chosen, _, _ = documented_draws(seed, n, x, 6, 0.0)
    e = GradientShap(linear, baselines, n, seed=seed)(x, 2)
    f_x, f_b = x @ w[2] + c[2], baselines @ w[2] + c[2]
    assert_close(e.attribution.sum(1), f_x - f_b[chosen].mean(0), np.float64)


def test_one_baseline_without_noise_is_integrated_gradients_in_expectation():
    torch.manual_seed(5)
    smooth = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()
    ours = npxai.from_torch(smooth)
    rng = np.random.default_rng(5)
    x, b = 2 * rng.standard_normal((2, 6)), rng.standard_normal((1, 6))
    n = 3000
    e = GradientShap(ours, b, n, seed=0, batch_size=1000)(x, 1)
    ig = npxai.IntegratedGradients(ours, n=32, baseline=b[0], method="gauss_legendre")(x, 1)
    # the spread of one draw (x - b) * grad f(b + a (x - b)), a uniform, on 2000 midpoints
    a = torch.tensor((np.arange(2000) + 0.5) / 2000)[:, None, None]
    points = (torch.tensor(b) + a * torch.tensor(x - b)).requires_grad_()
    smooth(points)[..., 1].sum().backward()
    draws = (x - b) * points.grad.numpy()
    # their mean is IG's integral up to the midpoint rule's O(h^2) error
    assert np.abs(draws.mean(0) - ig.attribution).max() <= 1e-6 * np.abs(ig.attribution).max()
    standard_error = draws.std(0) / np.sqrt(n)
    assert (np.abs(e.attribution - ig.attribution) <= 5 * standard_error).all()
    assert np.abs(e.attribution - ig.attribution).max() > 0  # random alphas, not IG's nodes


def test_gradient_shap_errors(net):
    _, ours, x, baselines = net
    with pytest.raises(ValueError, match="GradientShap: n_samples must be a positive int, got 0"):
        GradientShap(ours, baselines, n_samples=0)
    with pytest.raises(ValueError, match="GradientShap: stdevs must be a finite number >= 0"):
        GradientShap(ours, baselines, stdevs=-0.5)
    with pytest.raises(ValueError, match="GradientShap: seed must be an int >= 0 or None"):
        GradientShap(ours, baselines, seed=1.5)
    with pytest.raises(ValueError, match="GradientShap: batch_size must be a positive int"):
        GradientShap(ours, baselines, batch_size=0)
    with pytest.raises(TypeError, match="GradientShap: progress must be True or False"):
        GradientShap(ours, baselines, progress=None)
    with pytest.raises(ValueError, match="GradientShap: baselines must be an array of numbers"):
        GradientShap(ours, "zeros")
    with pytest.raises(ValueError, match=r"B >= 1 baselines .* got shape \(\)"):
        GradientShap(ours, 0.0)
    with pytest.raises(ValueError, match=r"B >= 1 baselines .* got shape \(0, 2, 6, 6\)"):
        GradientShap(ours, baselines[:0])
    with pytest.raises(ValueError, match="GradientShap: baselines must be finite"):
        GradientShap(ours, np.full((2, 2, 6, 6), np.inf))
    with pytest.raises(ValueError, match=r"baselines of shape \(2, 6, 6\) do not fit the input "
                                         r"\(3, 2, 6, 6\): they must be .* = \(B, 2, 6, 6\)"):  # fmt: skip
        GradientShap(ours, baselines[0])(x)
    with pytest.raises(TypeError, match="GradientShap.attribute got argument.*"
                                        "return_convergence_delta"):  # fmt: skip
        GradientShap(ours, baselines).attribute(x, target=0, return_convergence_delta=True)
