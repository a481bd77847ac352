"""ShapleyValues, ShapleyValueSampling and KernelSHAP against independent computations: on a
linear model, ``w (x - b)`` summed over each feature's entries (1e-12); exact values against the
average over all ``M!`` permutations written out here (1e-12) and against Captum's
``ShapleyValues`` (1e-6: Captum 0.9.0 sums its attributions in a float32 tensor,
``dtype=torch.float``, even in float64); permutation sampling against Captum's
``ShapleyValueSampling`` fed the same permutations (1e-6, the same float32 sum), and its error
against the exact values shrinking with the permutations; KernelSHAP's gap to the exact values
shrinking with the coalitions and vanishing when they are all enumerated (1e-12); efficiency,
symmetry and the dummy property with hypothesis; KernelSHAP against the ``shap`` package (its
coalitions and weights bit for bit given the same ``RandomState`` seed, its values to 1e-10);
the errors by name."""

import itertools

import numpy as np
import pytest
import torch
from captum.attr import ShapleyValues as CaptumShapleyValues
from captum.attr import ShapleyValueSampling as CaptumShapleyValueSampling
from conftest import float64_default, relative_error
from hypothesis import given, settings
from hypothesis import strategies as st

import npxai
from npxai.analyzers.shapley import (
    KernelSHAP,
    ShapleyValues,
    ShapleyValueSampling,
    kernel_coalitions,
    kernel_shap_solve,
)
from npxai.errors import TooManyFeaturesError


def game(a: np.ndarray) -> np.ndarray:
    """A non-linear function of 6 inputs, two outputs: symmetric in inputs 0 and 1, and input 5
    a dummy (it changes nothing)."""
    first = a[:, 0] * a[:, 1] + np.sin(a[:, 0] + a[:, 1]) * a[:, 2] + np.tanh(a[:, 3] * a[:, 4])
    return np.stack([first, a[:, 2] ** 2 - a[:, 4]], axis=1)


def permutation_shapley(f, x: np.ndarray, b: np.ndarray, labels: np.ndarray, t: int) -> np.ndarray:
    """The Shapley values of one sample's features by their definition: the mean over all
    permutations of the change of ``f_t`` as each feature (all its entries) joins."""
    m = labels.max() + 1
    phi = np.zeros(m)
    for order in itertools.permutations(range(m)):
        current = b.copy()
        before = f(current[None])[0, t]
        for j in order:
            current = np.where(labels == j, x, current)
            after = f(current[None])[0, t]
            phi[j] += after - before
            before = after
    return phi / np.prod(np.arange(1, m + 1))


def torch_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 5, 3),
    ).double().eval()  # fmt: skip


def test_linear_model_gives_weight_times_difference():
    """``f(x) = x W``: ``phi_j = sum_{i in j} W_it (x_i - b_i)`` for every method, with any
    permutations or coalitions (the linear fit is exact)."""
    rng = np.random.default_rng(0)
    w, x, b = rng.standard_normal((7, 3)), rng.standard_normal((2, 7)), rng.standard_normal(7)
    mask = np.array([0, 0, 1, 2, 2, 2, 3])
    expected = np.stack(
        [np.bincount(mask, w[:, 1] * (row - b)) for row in x]
    )  # per feature, per sample

    def f(a):
        return a @ w

    for analyzer in (
        ShapleyValues(f, mask, b),
        ShapleyValueSampling(f, 3, mask, b, seed=1),
        ShapleyValueSampling(f, 3, mask, b, antithetic=True, seed=1),
        KernelSHAP(f, 8, mask, b, seed=1),
    ):
        explanation = analyzer(x, 1)
        values = explanation.extras["feature_attribution"]
        assert relative_error(values, expected) < 1e-12, analyzer
        assert relative_error(explanation.attribution, expected[:, mask]) < 1e-12
    pixels = ShapleyValues(f, baselines=b)(x, 1).attribution  # every entry a feature
    assert relative_error(pixels, w[:, 1] * (x - b)) < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exact_values_are_the_permutation_average(dtype):
    rng = np.random.default_rng(1)
    x, b = rng.standard_normal((2, 6)).astype(dtype), rng.standard_normal(6).astype(dtype)
    mask = np.array([[4, 9, 9, 1, 7, 7], [0, 0, 1, 2, 3, 3]])  # per sample; not contiguous
    explanation = ShapleyValues(game, mask, b)(x, [0, 1])
    assert explanation.attribution.dtype == dtype
    for n, t in enumerate((0, 1)):
        _, labels = np.unique(mask[n], return_inverse=True)
        expected = permutation_shapley(game, x[n].astype(np.float64), b.astype(np.float64),
                                       labels, t)  # fmt: skip
        if dtype == np.float32:  # the model itself runs in float32
            assert relative_error(explanation.extras["feature_attribution"][n], expected) < 1e-5
        else:
            assert relative_error(explanation.extras["feature_attribution"][n], expected) < 1e-12
            assert relative_error(explanation.attribution[n], expected[labels]) < 1e-12


def test_exact_values_equal_captums_on_a_feature_mask():
    net = torch_cnn()
    rng = np.random.default_rng(2)
    x, b = rng.standard_normal((2, 3, 8, 10)), rng.standard_normal((1, 3, 8, 10))
    mask = (np.arange(8)[:, None] // 4 * 2 + np.arange(10)[None] // 5).reshape(1, 1, 8, 10)
    with float64_default():
        expected = CaptumShapleyValues(net).attribute(
            torch.tensor(x), baselines=torch.tensor(b), target=1, feature_mask=torch.tensor(mask)
        ).numpy()  # fmt: skip
    for model in (net, npxai.from_torch(net)):
        ours = ShapleyValues(model, batch_size=7).attribute(
            x, target=1, baselines=b, feature_mask=mask
        )
        assert ours.dtype == np.float64
        assert relative_error(ours, expected) < 1e-6  # Captum's float32 sum


@pytest.mark.parametrize("antithetic", [False, True])
def test_permutation_sampling_equals_captums_with_the_same_permutations(antithetic):
    """Captum fed the permutations npxai's docstring says it draws:
    ``default_rng(seed).permutation(M)``, each second one reversed when antithetic."""
    net = torch_cnn()
    rng = np.random.default_rng(3)
    x, b = rng.standard_normal((1, 3, 8, 10)), 0.25
    mask = np.arange(80).reshape(1, 1, 8, 10) // 9  # 9 features
    draw = np.random.default_rng(11)
    if antithetic:
        drawn = [draw.permutation(9) for _ in range(3)]
        permutations = [p for q in drawn for p in (q, q[::-1])][:5]
    else:
        permutations = [draw.permutation(9) for _ in range(5)]
    captum = CaptumShapleyValueSampling(net)
    captum.permutation_generator = lambda m, n: (p.tolist() for p in permutations)
    with float64_default():
        expected = captum.attribute(
            torch.tensor(x), baselines=b, target=2, feature_mask=torch.tensor(mask), n_samples=5
        ).numpy()  # fmt: skip
    ours = ShapleyValueSampling(net, 5, mask, b, antithetic, seed=11, batch_size=5)(x, 2)
    assert relative_error(ours.attribution, expected) < 1e-6  # Captum's float32 sum
    with torch.no_grad():
        total = (net(torch.tensor(x)) - net(torch.full_like(torch.tensor(x), b)))[0, 2].item()
    assert abs(ours.extras["feature_attribution"][0].sum() - total) < 1e-12


def test_sampling_errors_shrink_with_samples():
    """The gap to the exact values (5 features) at few and many permutations or coalitions;
    KernelSHAP enumerating all ``2^5 - 2`` coalitions is exact."""
    rng = np.random.default_rng(4)
    x, b = rng.standard_normal((1, 6)), rng.standard_normal(6)
    mask = np.array([0, 1, 2, 3, 4, 4])
    exact = ShapleyValues(game, mask, b)(x, 0).extras["feature_attribution"]

    def gap(analyzer):
        return relative_error(analyzer(x, 0).extras["feature_attribution"], exact)

    assert (
        gap(ShapleyValueSampling(game, 2000, mask, b, seed=0))
        < gap(ShapleyValueSampling(game, 10, mask, b, seed=0)) / 5
    )
    assert gap(KernelSHAP(game, 24, mask, b, seed=0)) < gap(KernelSHAP(game, 8, mask, b, seed=0))
    full = KernelSHAP(game, 30, mask, b, seed=0)
    assert gap(full) < 1e-12
    assert full(x, 0).extras["n_coalitions"].tolist() == [30]


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_efficiency_symmetry_and_dummy(data):
    """Inputs 0 and 1 (features 0 and 1) are symmetric when ``x_0 = x_1`` and ``b_0 = b_1``,
    input 5 (feature 4) is a dummy."""
    seed = data.draw(st.integers(0, 2**31), label="seed")
    rng = np.random.default_rng(seed)
    x, b = rng.standard_normal((2, 6)), rng.standard_normal((2, 6))
    x[:, 1], b[:, 1] = x[:, 0], b[:, 0]
    mask = np.array([0, 1, 2, 3, 3, 4])
    target = data.draw(st.sampled_from([0, 1]), label="target")
    total = game(x)[:, target] - game(b)[:, target]
    for analyzer, exact in (
        (ShapleyValues(game, mask, b), True),
        (KernelSHAP(game, 30, mask, b), True),  # every coalition: exact
        (ShapleyValueSampling(game, 7, mask, b, seed=seed), False),
        (KernelSHAP(game, 20, mask, b, seed=seed), False),  # sizes 1 enumerated, 2 drawn
    ):
        phi = analyzer(x, target).extras["feature_attribution"]
        assert relative_error(phi.sum(axis=1), total, np.abs(phi).sum()) < 1e-12, analyzer
        if exact:
            assert relative_error(phi[:, 0], phi[:, 1], np.abs(phi).max()) < 1e-12
            assert np.abs(phi[:, 4]).max() < 1e-12 * np.abs(phi).max()
    sampled = ShapleyValueSampling(game, 7, mask, b, seed=seed)(x, target)
    assert (sampled.extras["feature_attribution"][:, 4] == 0).all()  # each credit exactly 0


def test_seeded_runs_repeat_and_batching_changes_nothing():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6))
    for make in (
        lambda seed, rows: ShapleyValueSampling(game, 9, seed=seed, batch_size=rows),
        lambda seed, rows: KernelSHAP(game, 20, seed=seed, batch_size=rows),
    ):
        first = make(3, 64)(x).attribution
        assert np.array_equal(first, make(3, 64)(x).attribution)
        assert relative_error(make(3, 5)(x).attribution, first) < 1e-13
        assert not np.array_equal(first, make(4, 64)(x).attribution)


def test_a_single_feature_takes_the_whole_difference():
    x, b = np.array([[1.0, 2.0, 3.0]]), 0.5
    total = game(np.hstack([x, x]))[0, 0] - game(np.full((1, 6), b))[0, 0]
    mask = np.zeros(6, int)
    for analyzer in (ShapleyValues(game, mask, b), ShapleyValueSampling(game, 2, mask, b),
                     KernelSHAP(game, 3, mask, b)):  # fmt: skip
        phi = analyzer(np.hstack([x, x]), 0).extras["feature_attribution"]
        assert abs(phi[0, 0] - total) < 1e-12


def test_refuses_bad_input_by_name():
    x = np.zeros((2, 6))
    with pytest.raises(TooManyFeaturesError, match="sample 0 has 17 features, more than the 16"):
        ShapleyValues(lambda a: a[:, :2])(np.zeros((1, 17)))
    with pytest.raises(ValueError, match=r"baselines of shape \(5,\) do not fit the input"):
        ShapleyValues(game, baselines=np.zeros(5))(x)
    with pytest.raises(ValueError, match=r"feature_mask of shape \(5,\) does not cover the input"):
        ShapleyValueSampling(game, feature_mask=np.arange(5))(x)
    with pytest.raises(ValueError, match=r"feature_mask of shape \(3, 6\) does not cover"):
        KernelSHAP(game, feature_mask=np.zeros((3, 6), int))(x)
    with pytest.raises(TypeError, match="feature_mask must hold integer labels, got float64"):
        ShapleyValues(game, feature_mask=np.zeros(6))
    with pytest.raises(TypeError, match="ShapleyValues.attribute: feature_mask must hold integer"):
        ShapleyValues(game).attribute(x, feature_mask=torch.zeros(6))
    with pytest.raises(ValueError, match="ShapleyValueSampling: n_samples must be a positive int"):
        ShapleyValueSampling(game, 0)
    with pytest.raises(ValueError, match="KernelSHAP: n_samples must be a positive int"):
        KernelSHAP(game, 0)
    with pytest.raises(ValueError, match=r"KernelSHAP.attribute: n_samples must be a positive"):
        KernelSHAP(game).attribute(x, n_samples=0)
    with pytest.raises(ValueError, match="the 2 coalitions drawn for sample 0 do not determine"):
        KernelSHAP(game, 2, seed=0)(x)
    with pytest.raises(ValueError, match="target 2 is out of range for an output of 2 classes"):
        ShapleyValues(game)(x, target=2)
    with pytest.raises(TypeError, match="antithetic must be True or False"):
        ShapleyValueSampling(game, antithetic=1)
    with pytest.raises(ValueError, match="KernelSHAP: seed must be an int >= 0 or None"):
        KernelSHAP(game, seed=-1)
    with pytest.raises(ValueError, match="ShapleyValues: batch_size must be a positive int"):
        ShapleyValues(game, batch_size=0)
    with pytest.raises(TypeError, match="ShapleyValues.attribute got argument.*n_samples"):
        ShapleyValues(game).attribute(x, n_samples=3)
    with pytest.raises(ValueError, match="ShapleyValues: baselines must be finite numbers"):
        ShapleyValues(game, baselines=np.inf)


def test_kernel_shap_is_shaps_kernel_explainer():
    """shap 0.51.0's KernelExplainer (one background row, ``l1_reg=False``): its coalitions and
    weights are :func:`kernel_coalitions`'s given a ``RandomState`` of the same seed (shap draws
    from NumPy's global one), bit for bit, at budgets that enumerate some sizes, none, or all;
    its values equal the constrained fit of its coalitions, and npxai's KernelSHAP when every
    coalition is enumerated (1e-12)."""
    import shap  # here: importing it takes seconds

    rng = np.random.default_rng(6)
    m = 9
    x, b = rng.standard_normal((1, m)), rng.standard_normal((1, m))

    def f(a):
        first = a[:, 0] * a[:, 1] + np.sin(a[:, 2:5]).prod(axis=1) + a[:, 5:] @ np.arange(1.0, 5.0)
        return np.stack([first, a[:, 0]], axis=1)

    for n_samples in (30, 100, 300, 510, 600):
        explainer = shap.KernelExplainer(lambda a: f(a)[:, 0], b)
        np.random.seed(n_samples)  # noqa: NPY002 (shap draws from the global RandomState)
        phi = explainer.shap_values(x, nsamples=n_samples, l1_reg=False, silent=True)[0]
        masks, weights = kernel_coalitions(m, n_samples, np.random.RandomState(n_samples))
        assert np.array_equal(masks, explainer.maskMatrix)
        assert np.array_equal(weights, explainer.kernelWeights)
        values = f(b + masks * (x - b))[:, 0] - f(b)[0, 0]
        ours = kernel_shap_solve(masks, weights, values, f(x)[0, 0] - f(b)[0, 0])
        assert relative_error(ours, phi) < 1e-10
    analyzer = KernelSHAP(f, 510, baselines=b)(x, 0).extras["feature_attribution"][0]
    assert relative_error(analyzer, phi) < 1e-12


def test_captums_call_and_the_backends():
    """``attribute`` with Captum's names (tensors too) is the analyzer built with those
    settings; the numba backend gives the numpy backend's values."""
    net = torch_cnn()
    model = npxai.from_torch(net)
    rng = np.random.default_rng(7)
    x, b = rng.standard_normal((2, 3, 8, 10)), rng.standard_normal((2, 3, 8, 10))
    mask = np.arange(80).reshape(8, 10) // 20  # (H, W): 4 features, every channel alike
    for analyzer, n_samples, make in (
        (ShapleyValues(model), {}, lambda backend: ShapleyValues(model, mask, b, backend=backend)),
        (ShapleyValueSampling(model, 2, seed=1), {"n_samples": 6},
         lambda backend: ShapleyValueSampling(model, 6, mask, b, seed=1, backend=backend)),
        (KernelSHAP(model, 3, seed=1), {"n_samples": 9},
         lambda backend: KernelSHAP(model, 9, mask, b, seed=1, backend=backend)),
    ):  # fmt: skip
        ours = analyzer.attribute(torch.tensor(x), target=torch.tensor([0, 2]),
                                  baselines=torch.tensor(b), feature_mask=torch.tensor(mask),
                                  perturbations_per_eval=3, **n_samples)  # fmt: skip
        expected = make("numpy")(x, [0, 2])
        assert relative_error(ours, expected.attribution) < 1e-12, analyzer
        assert expected.extras["n_features"].tolist() == [4, 4]
        assert relative_error(make("numba")(x, [0, 2]).attribution, expected.attribution) < 1e-12
    phi = KernelSHAP(model, 9, mask, b, seed=1).attribute(x, [0, 2], return_input_shape=False)
    assert relative_error(phi, expected.extras["feature_attribution"]) < 1e-12


def test_too_many_features_or_too_few_coalitions_are_refused_before_the_model_runs():
    calls = []

    def counted(a):
        calls.append(len(a))
        return a[:, :2]

    x = np.zeros((1, 10_001))
    for analyzer in (ShapleyValues(counted, np.arange(17)), KernelSHAP(counted)):
        with pytest.raises(TooManyFeaturesError, match=f"{type(analyzer).__name__}: sample 0 has"):
            analyzer(x[:, : 17 if isinstance(analyzer, ShapleyValues) else None])
    assert not calls
    with pytest.raises(ValueError, match="the 3 coalitions drawn for sample 0 do not determine"):
        KernelSHAP(counted, 3)(np.zeros((1, 6)))
    assert calls == [1]  # f(x) for the target, no coalition
