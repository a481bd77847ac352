"""npxai.metrics.complexity (sparseness, complexity, effective_complexity) and
npxai.metrics.axioms (completeness): against Quantus 0.6.0 on the same torch model, inputs and
attributions, against independent NumPy / SciPy / torch computations, and hand-checked cases."""

import copy
import warnings

import numpy as np
import pytest
import quantus
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npxai.metrics.axioms import completeness
from npxai.metrics.complexity import (
    GINI_EPSILON,
    complexity,
    effective_complexity,
    sparseness,
)

N, C, H, W = 4, 3, 5, 6
#: Quantus's normalise_by_max over each sample's axes (its default divides by the batch's max).
PER_SAMPLE = {"normalise_axes": (1, 2, 3)}


@pytest.fixture(autouse=True)
def quiet():
    # Quantus warns about its parameterisation on every call, also with disable_warnings=True.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def torch_net(seed=0, channels=C):
    torch.manual_seed(seed)
    layers = [torch.nn.Conv2d(channels, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(4 * H * W, 3)).eval()


def data(dtype=np.float32, channels=1, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    a = rng.standard_normal((N, channels, H, W)) * scale
    return x, a.astype(dtype), np.array([0, 1, 2, 1])


def quantus_scores(metric, net, x, a, y, **kwargs):
    score = metric(disable_warnings=True, **kwargs)
    return np.asarray(score(model=net, x_batch=x, y_batch=y, a_batch=a.copy()), dtype=np.float64)


def gini_pairwise(v):
    """The Gini index as the mean absolute difference: sum_ij |v_i - v_j| / (2 n sum_i v_i)."""
    return np.abs(v[:, None] - v[None, :]).sum() / (2 * len(v) * v.sum())


# ---------------------------------------------------------------- sparseness


@pytest.mark.parametrize("channels", [1, C])
def test_sparseness_equals_quantus(channels):
    net = torch_net()
    x, a, y = data(np.float64, channels)
    ours = sparseness(net, x, a, y)
    # Quantus normalising per sample is npxai's normalise=True, to rounding.
    expected = quantus_scores(quantus.Sparseness, net, x, a, y, normalise_func_kwargs=PER_SAMPLE)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-14)
    # Quantus's default divides by the batch's largest |a|: the 1e-7 enters at another scale,
    # lowering the value by at most a relative n eps / S_Q, S_Q = sum |a| / max_batch |a|.
    expected = quantus_scores(quantus.Sparseness, net, x, a, y)
    n, s_q = a[0].size, np.abs(a).sum(axis=(1, 2, 3)) / np.abs(a).max()
    assert np.all(expected <= ours + 1e-15)
    assert np.all(ours - expected <= ours * n * GINI_EPSILON / s_q + 1e-15)
    assert np.abs(ours - expected).max() > 1e-12  # the batch's scale differs from the samples'
    # Without normalisation (a small scale, where Quantus's 1e-7 matters) and, for a non-negative
    # attribution, with Quantus's abs=False.
    small = a * 1e-6
    expected = quantus_scores(quantus.Sparseness, net, x, small, y, normalise=False)
    ours = sparseness(net, x, small, y, normalise=False)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-14)
    assert np.abs(ours - sparseness(net, x, small, y)).min() > 1e-3  # the epsilon mattered
    expected = quantus_scores(quantus.Sparseness, net, x, np.abs(a), y, abs=False)
    np.testing.assert_allclose(sparseness(net, x, np.abs(a), y), expected, rtol=0, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data())
def test_sparseness_is_the_gini_index_of_the_normalised_magnitudes(shape, data):
    seed = data.draw(st.integers(0, 2**31))
    a = np.random.default_rng(seed).standard_normal((2, *shape))
    x = np.zeros((2, *shape))
    for normalise in (True, False):
        magnitude = np.abs(a).reshape(2, -1)
        if normalise:
            magnitude = magnitude / magnitude.max(axis=1, keepdims=True)
        expected = [gini_pairwise(v + GINI_EPSILON) for v in magnitude]
        ours = sparseness(None, x, a, normalise=normalise)
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def test_sparseness_hand_checked():
    n = 24
    x = np.zeros((3, n))
    one_hot = np.zeros(n)
    one_hot[7] = -2.5
    uniform = np.where(np.arange(n) % 2, 3.0, -3.0)
    a = np.stack([one_hot, uniform, np.zeros(n)])
    # sum_i (2i - n - 1) v_(i) = n - 1 for the one-hot (the epsilon cancels), n (1 + n eps)
    # in the denominator; a constant |a| (and the all-zero attribution) has Gini 0.
    expected = [(n - 1) / (n * (1 + n * GINI_EPSILON)), 0.0, 0.0]
    np.testing.assert_allclose(sparseness(None, x, a), expected, rtol=1e-15, atol=1e-16)


# ---------------------------------------------------------------- complexity


@pytest.mark.parametrize("channels", [1, C])
def test_complexity_equals_quantus(channels):
    net = torch_net()
    x, a, y = data(np.float64, channels)
    n = a[0].size
    ours = complexity(net, x, a, y)
    # Quantus's log(p + 1e-12) lowers the entropy by at most n 1e-12 (plus rounding); its
    # normalise and (for a non-negative attribution) abs=False change nothing.
    for kwargs, attribution in [({}, a), ({"normalise": False}, a), ({"abs": False}, np.abs(a))]:
        expected = quantus_scores(quantus.Complexity, net, x, attribution, y, **kwargs)
        assert np.all(expected <= ours + 1e-14)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=n * 1e-12 + 1e-14)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data())
def test_complexity_is_the_entropy_of_the_fractions(shape, data):
    seed = data.draw(st.integers(0, 2**31))
    a = np.random.default_rng(seed).standard_normal((2, *shape))
    a[0].flat[-1] = 0.0 if a[0].size > 1 else a[0].flat[-1]  # a zero fraction: 0 log 0 = 0
    expected = [scipy.stats.entropy(np.abs(v).ravel()) for v in a]
    ours = complexity(None, np.ones((2, *shape), np.float32), a)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def test_complexity_hand_checked():
    n = 30
    one_hot = np.zeros(n)
    one_hot[3] = 4.0
    uniform = np.full(n, -0.5)
    half = np.where(np.arange(n) < 10, 1.0, 0.0)
    ours = complexity(None, np.zeros((3, n)), np.stack([one_hot, uniform, half]))
    np.testing.assert_allclose(ours, [0.0, np.log(n), np.log(10)], rtol=1e-14, atol=1e-15)


def test_complexity_of_an_all_zero_attribution_is_an_error():
    a = np.ones((3, 5))
    a[1] = 0.0
    with pytest.raises(
        ValueError, match=r"complexity: the attribution of sample\(s\) \[1\] is all"
    ):
        complexity(None, np.zeros((3, 5)), a)


# ---------------------------------------------------------------- effective complexity


def test_effective_complexity_equals_quantus():
    net = torch_net()
    x, a, y = data(np.float64)
    # Magnitudes over eight decades, so that the threshold cuts through each sample.
    a = a * 10.0 ** np.random.default_rng(1).uniform(-8, 0, a.shape)
    metric = quantus.EffectiveComplexity
    for eps in (1e-5, 1e-3):
        expected = quantus_scores(metric, net, x, a, y, eps=eps, normalise_func_kwargs=PER_SAMPLE)
        ours = effective_complexity(net, x, a, y, eps=eps)
        assert 0 < ours.min() and ours.max() < a[0].size
        np.testing.assert_array_equal(ours, expected)
        expected = quantus_scores(
            metric, net, x, np.abs(a), y, eps=eps, abs=False, normalise_func_kwargs=PER_SAMPLE
        )
        np.testing.assert_array_equal(ours, expected)
        expected = quantus_scores(metric, net, x, a, y, eps=eps, normalise=False)
        np.testing.assert_array_equal(
            effective_complexity(net, x, a, y, eps=eps, normalise=False), expected
        )


def test_effective_complexity_hand_checked():
    a = np.array([[0.0, 1e-6, -2e-5, 0.5, -1.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    ours = effective_complexity(None, np.zeros((2, 5)), a)
    np.testing.assert_array_equal(ours, [3.0, 5.0])  # |a| / 1 > 1e-5: 2e-5, 0.5, 1
    np.testing.assert_array_equal(effective_complexity(None, np.zeros((2, 5)), a, eps=0.6), [1, 5])


# ---------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize("metric", [sparseness, complexity, effective_complexity])
def test_model_runs_once_or_not_at_all(metric):
    x, a, y = data(np.float32)
    net = torch_net()
    calls = []

    def model(inputs):
        calls.append(len(inputs))
        return net(torch.from_numpy(inputs)).detach().numpy()

    with_model = metric(model, x, a, y)
    assert calls == [N]
    np.testing.assert_array_equal(metric(None, x, a), with_model)
    assert calls == [N]
    # An explainer runs once, for the targets (None: the arg-max output).
    seen = []

    def explain(inputs, target):
        seen.append(target)
        return a

    np.testing.assert_array_equal(metric(model, x, explain), with_model)
    np.testing.assert_array_equal(seen[0], model(x).argmax(axis=1))
    with pytest.raises(TypeError, match=rf"{metric.__name__}: an explainer as attribution needs"):
        metric(None, x, explain)


@pytest.mark.parametrize("metric", [sparseness, complexity, effective_complexity])
def test_float32_and_float64(metric):
    x, a, _ = data(np.float32)
    ours = metric(None, x, a)
    assert ours.dtype == np.float64 and ours.shape == (N,)
    np.testing.assert_array_equal(ours, metric(None, x.astype(np.float64), a.astype(np.float64)))


@pytest.mark.parametrize("metric", [sparseness, complexity, effective_complexity])
def test_bad_input(metric):
    x, a, _ = data()
    name = metric.__name__
    with pytest.raises(ValueError, match=rf"{name}: attribution of shape \(4, 2, 5, 6\) does not"):
        metric(None, x, np.ones((N, 2, H, W)))
    with pytest.raises(ValueError, match=rf"{name}: attribution of shape \(3, 1, 5, 6\) does not"):
        metric(None, x, a[:3])
    with pytest.raises(ValueError, match=rf"{name}: attribution has NaN"):
        metric(None, x, np.full_like(a, np.nan))


def test_bad_options():
    x, a, _ = data()
    with pytest.raises(TypeError, match="sparseness: normalise must be True or False, got 1"):
        sparseness(None, x, a, normalise=1)
    with pytest.raises(ValueError, match=r"effective_complexity: eps must be a finite number >= 0"):
        effective_complexity(None, x, a, eps=-1e-5)
    with pytest.raises(TypeError, match="effective_complexity: normalise must be True or False"):
        effective_complexity(None, x, a, normalise="yes")


# ---------------------------------------------------------------- completeness


def torch_gap(net, x, a, y, baseline, softmax=False):
    """sum(a) - (f(x) - f(x0)) with torch in float64, the oracle of completeness."""
    net = copy.deepcopy(net).double()
    with torch.no_grad():
        outputs = [net(torch.tensor(v, dtype=torch.float64)) for v in (x, baseline)]
    if softmax:
        outputs = [torch.softmax(o, dim=1) for o in outputs]
    rows = torch.arange(len(y))
    change = (outputs[0][rows, y] - outputs[1][rows, y]).numpy()
    return a.reshape(len(a), -1).sum(axis=1) - change


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("channels", [1, C])
def test_completeness_gap(channels, softmax):
    net = torch_net()
    x, a, y = data(np.float64, channels)
    rng = np.random.default_rng(3)
    sample = rng.standard_normal((C, H, W))
    cases = [
        (0.0, np.zeros_like(x)),
        (-0.5, np.full_like(x, -0.5)),
        (sample, np.broadcast_to(sample, x.shape)),
        ("black", np.broadcast_to(x.min(axis=(1, 2, 3), keepdims=True), x.shape)),
        ("white", np.broadcast_to(x.max(axis=(1, 2, 3), keepdims=True), x.shape)),
        ("mean", np.broadcast_to(x.mean(axis=(1, 2, 3), keepdims=True), x.shape)),
    ]
    for baselines, baseline in cases:
        ours = completeness(net, x, a, y, baselines=baselines, softmax=softmax, batch_size=3)
        expected = torch_gap(net, x, a, y, baseline, softmax)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_completeness_of_a_linear_model_is_exact():
    torch.manual_seed(1)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(C * H * W, 3)).eval()
    x, _, y = data(np.float64)
    weight = linear[1].weight.detach().double().numpy().reshape(3, C, H, W)
    a = weight[y] * x  # w_t * x: sum = w_t . x = f(x)_t - f(0)_t
    gap = completeness(linear, x, a, y)
    np.testing.assert_allclose(gap, 0.0, atol=1e-13)
    np.testing.assert_array_equal(completeness(linear, x, a, y, tolerance=1e-12), 1.0)
    np.testing.assert_array_equal(completeness(linear, x, a + 1e-3, y, tolerance=1e-12), 0.0)


@pytest.mark.parametrize("baselines", ["black", "white", "mean"])
def test_completeness_tolerance_equals_quantus(baselines):
    net = torch_net()
    x, a, y = data(np.float32, C)
    a = a.astype(np.float64)
    # Samples 0 and 2: an attribution summing to f(x) - f(x0) as Quantus computes it (float32
    # torch); 1 and 3: random ones, far from it.
    statistic = {"black": np.min, "white": np.max, "mean": np.mean}[baselines]
    x0 = np.broadcast_to(statistic(x, axis=(1, 2, 3), keepdims=True), x.shape)
    with torch.no_grad():
        change = [net(torch.tensor(v))[np.arange(N), y] for v in (x, x0)]
    change = (change[0] - change[1]).numpy()
    for n in (0, 2):
        a[n] = 0.0
        a[n, 0, 0, 0] = change[n]
    metric = quantus.Completeness(
        disable_warnings=True, normalise=False, perturb_baseline=baselines
    )
    expected = metric(model=net, x_batch=x, y_batch=y, a_batch=a.copy(), softmax=False)
    assert list(expected) == [True, False, True, False]
    # Quantus subtracts in float32, npxai in float64: equal within float32 rounding.
    ours = completeness(net, x, a, y, baselines=baselines, tolerance=1e-6)
    np.testing.assert_array_equal(ours, np.asarray(expected, dtype=np.float64))
    assert np.abs(completeness(net, x, a, y, baselines=baselines)[[1, 3]]).min() > 1e-3


def test_completeness_batches_and_dtypes():
    net = torch_net()
    x, a, y = data(np.float32, C)
    calls = []

    def model(inputs):
        calls.append(len(inputs))
        return net(torch.from_numpy(inputs)).detach().numpy()

    ours = completeness(model, x, a, y, batch_size=3)
    assert calls == [N, 3, 1] and ours.dtype == np.float64
    expected = torch_gap(net, x.astype(np.float64), a.astype(np.float64), y, np.zeros(x.shape))
    np.testing.assert_allclose(
        ours, expected, rtol=0, atol=1e-5 * np.abs(a).sum(axis=(1, 2, 3)).max()
    )


def test_completeness_bad_input():
    net = torch_net()
    x, a, y = data()
    with pytest.raises(ValueError, match=r"completeness: tolerance must be a finite number >= 0"):
        completeness(net, x, a, y, tolerance=-1.0)
    with pytest.raises(ValueError, match=r"completeness: baselines must be a number, an array or"):
        completeness(net, x, a, y, baselines="grey")
    with pytest.raises(
        ValueError, match=r"completeness: baselines of shape \(2, 5, 6\) do not fit"
    ):
        completeness(net, x, a, y, baselines=np.zeros((2, H, W)))
    with pytest.raises(ValueError, match=r"completeness: baselines must be finite numbers"):
        completeness(net, x, a, y, baselines=np.nan)
    with pytest.raises(
        ValueError, match=r"completeness: attribution of shape \(4, 5, 6\) does not"
    ):
        completeness(net, x, a[:, 0], y)
