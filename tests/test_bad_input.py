"""Bad input past the loader (issue 16, class 7): non-finite state dicts are refused by key (and
loaded on request, then propagating NaN as torch does on every backend), empty and ragged inputs
are refused by name in every analyzer, nonsense parameters are refused at construction naming the
parameter, and ``Explanation.input`` is the caller's array."""

import numpy as np
import pytest
import torch
from conftest import draw_array
from hypothesis import given, settings
from hypothesis import strategies as st
from npxai.kernels.cuda import activation as cuda_activation
from npxai.kernels.cuda import pool as cuda_pool
from numba import cuda
from test_kernels import assert_nan_close, plant_nonfinite

import npxai
from npxai import StateDictError
from npxai import composites as C
from npxai import layers as L
from npxai import rules as R
from npxai.reference import activation, pool

BACKENDS = ["numpy", "numba", "cuda"]


def small_net(seed: int = 0) -> npxai.Sequential:
    """Conv, batch norm, ReLU, max pool, dense: for (N, 1, 8, 8) inputs, 3 outputs."""
    npxai.manual_seed(seed)
    return npxai.Sequential(
        L.Conv2d(1, 4, 3, padding=1), L.BatchNorm2d(4), L.ReLU(), L.MaxPool2d(2),
        L.Flatten(), L.Linear(64, 3),
    )  # fmt: skip


def torch_twin(model: npxai.Sequential) -> torch.nn.Sequential:
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 3),
    ).double().eval()  # fmt: skip
    twin.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    return twin


# --- non-finite parameters and buffers ------------------------------------------------------


@given(
    key=st.sampled_from(["0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var",
                         "5.weight"]),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    data=st.data(),
)  # fmt: skip
def test_load_state_dict_refuses_non_finite_entries_naming_the_key(key, dtype, bad, data):
    model = small_net()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in before.items()}
    value = state[key]
    spots = data.draw(st.lists(st.integers(0, value.size - 1), min_size=1, max_size=5))
    value.flat[spots] = bad
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
    count = len(set(spots))
    with pytest.raises(StateDictError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert f"  {key}: contains {value[first]} at index {first} " in message
    assert f"({count} of {value.size} entries non-finite)" in message
    assert "allow_nonfinite=True" in message and "1 problems" in message
    for k, v in model.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(v, before[k])
    result = model.load_state_dict(state, allow_nonfinite=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(model.state_dict()[key], value)  # NaN and Inf kept as given


def test_every_non_finite_entry_is_reported_at_once_with_the_other_problems():
    model = small_net()
    state = {k: v.copy() for k, v in model.state_dict().items()}
    state["0.weight"][0, 0, 1, 2] = np.nan
    state["1.running_var"][3] = np.inf
    state["5.bias"] = np.zeros(4, np.float32)
    with pytest.raises(StateDictError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "(3 problems)" in message
    assert "0.weight: contains nan at index (0, 0, 1, 2) (1 of 36 entries non-finite)" in message
    assert "1.running_var: contains inf at index (3,) (1 of 4 entries non-finite)" in message
    assert "5.bias: expected shape (3,), found (4,)" in message


def test_load_state_dict_flags_must_be_bools():
    model = small_net()
    with pytest.raises(TypeError, match="allow_nonfinite must be True or False, got 'yes'"):
        model.load_state_dict(model.state_dict(), allow_nonfinite="yes")
    with pytest.raises(TypeError, match="strict must be True or False"):
        model.load_state_dict(model.state_dict(), strict=None)


def test_a_nan_variance_loaded_on_purpose_gives_torch_nans_on_every_backend():
    """The issue's case: a NaN batch-norm variance made numba's logits finite (its ReLU and max
    pool dropped NaN) and numpy's NaN. Now every backend gives torch's NaNs and its finite values,
    for the output and the input gradient."""
    model = small_net()
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    state["1.running_var"][2] = np.nan
    model.load_state_dict(state, allow_nonfinite=True)
    twin = torch_twin(model)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt)
    yt[:, 1].sum().backward()
    expected_y, expected_grad = yt.detach().numpy(), xt.grad.numpy()
    assert np.isnan(expected_y).all()  # every logit reads channel 2
    for backend in BACKENDS:
        assert_nan_close(model(x, backend=backend), expected_y)
        assert_nan_close(npxai.gradient(model, x, 1, backend=backend), expected_grad)


def test_a_nan_weight_spreads_as_in_torch_on_every_backend():
    """One NaN weight of the first convolution: the outputs of that channel are NaN where the
    kernel reaches, the max pools holding one pool to NaN, and the logits are NaN, as in torch."""
    model = small_net(1)
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    state["0.weight"][1, 0, 0, 0] = np.nan
    model.load_state_dict(state, allow_nonfinite=True)
    twin = torch_twin(model)
    x = np.abs(np.random.default_rng(1).standard_normal((2, 1, 8, 8)))
    expected = [module for module in twin][:4]
    hidden = torch.nn.Sequential(*expected)(torch.tensor(x)).detach().numpy()
    assert np.isnan(hidden[:, 1]).any() and not np.isnan(hidden[:, [0, 2, 3]]).any()
    for backend in BACKENDS:
        trace = model.trace(x, backend)
        pooled = trace["3"].output
        assert_nan_close(np.asarray(pooled if backend != "cuda" else pooled.copy_to_host()), hidden)


# --- the cuda kernels with NaN (under the simulator) -----------------------------------------


@settings(max_examples=10)
@given(size=st.tuples(st.integers(1, 7), st.integers(1, 7)), kernel=st.integers(1, 3),
       stride=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]), data=st.data())  # fmt: skip
def test_cuda_pools_and_activations_propagate_nan_as_the_reference(
    size, kernel, stride, dtype, data
):
    """The device kernels against the reference (which tests/test_kernels.py holds to torch's
    NaN rules): max pooling's values, arg-max and gradient exactly, the average pools and the
    activations within the kernel tolerance, NaN in the same places."""
    kernel = (min(kernel, size[0]), min(kernel, size[1]))
    args = (kernel, (stride, stride), (0, 0), (1, 1), False)
    x = plant_nonfinite(data, draw_array(data, (2, 2, *size), dtype))
    y, argmax = pool.max_pool2d(x, *args, return_indices=True)
    g = plant_nonfinite(data, draw_array(data, y.shape, dtype, "g"))
    dy, dargmax = cuda_pool.max_pool2d(cuda.to_device(x), *args, return_indices=True)
    np.testing.assert_array_equal(dy.copy_to_host(), y)
    np.testing.assert_array_equal(dargmax.copy_to_host(), argmax)
    grad = cuda_pool.max_pool2d_vjp(cuda.to_device(g), cuda.to_device(x), *args)
    np.testing.assert_array_equal(grad.copy_to_host(), pool.max_pool2d_vjp(g, x, *args))
    terms = float(np.abs(x[np.isfinite(x)]).max(initial=1.0))
    avg = (kernel, (stride, stride), (0, 0), False, True, None)
    assert_nan_close(
        cuda_pool.avg_pool2d(cuda.to_device(x), *avg).copy_to_host(),
        pool.avg_pool2d(x, *avg),
        terms,
    )
    assert_nan_close(
        cuda_pool.adaptive_avg_pool2d(cuda.to_device(x), (2, 1)).copy_to_host(),
        pool.adaptive_avg_pool2d(x, (2, 1)), terms,
    )  # fmt: skip
    for name in ("relu", "relu6"):
        expected = getattr(activation, name)(x)
        assert_nan_close(getattr(cuda_activation, name)(cuda.to_device(x)).copy_to_host(), expected)
        vjp = getattr(cuda_activation, name + "_vjp")(cuda.to_device(x), cuda.to_device(x))
        assert_nan_close(vjp.copy_to_host(), getattr(activation, name + "_vjp")(x, x))


# --- empty and ragged inputs ------------------------------------------------------------------

ANALYZERS = {
    "Gradient": lambda m: npxai.Gradient(m),
    "InputTimesGradient": lambda m: npxai.InputTimesGradient(m),
    "SmoothGrad": lambda m: npxai.SmoothGrad(m, n=2, seed=0),
    "IntegratedGradients": lambda m: npxai.IntegratedGradients(m, n=2),
    "GradCAM": lambda m: npxai.GradCAM(m),
    "GuidedBackprop": lambda m: npxai.GuidedBackprop(m),
    "DeconvNet": lambda m: npxai.DeconvNet(m),
    "LRP": lambda m: npxai.LRP(m),
    "CRP": lambda m: npxai.CRP(npxai.LRP(m), "0", npxai.TopNFeatures(2)),
    "DeepLift": lambda m: npxai.DeepLift(m),
    "DeepLiftShap": lambda m: npxai.DeepLiftShap(m, np.zeros((2, 1, 8, 8))),
    "GradientShap": lambda m: npxai.GradientShap(m, np.zeros((2, 1, 8, 8)), n_samples=2, seed=0),
    "PatternNet": lambda m: npxai.PatternNet(m).fit(np.ones((4, 1, 8, 8))),
    "PatternAttribution": lambda m: npxai.PatternAttribution(m).fit(np.ones((4, 1, 8, 8))),
    "Occlusion": lambda m: npxai.Occlusion(m, (1, 4, 4), 4),
    "LIME": lambda m: npxai.LIME(m, n_samples=4, superpixel_size=4, seed=0),
    "KernelSHAP": lambda m: npxai.KernelSHAP(m, 14, npxai.grid_mask((1, 8, 8), 4), seed=0),
    "ShapleyValueSampling": lambda m: npxai.ShapleyValueSampling(m, 2, seed=0),
    "ShapleyValues": lambda m: npxai.ShapleyValues(m, npxai.grid_mask((1, 8, 8), 4)),
    "NoiseTunnel": lambda m: npxai.NoiseTunnel(npxai.Gradient(m), nt_samples=2, seed=0),
    "NoiseAugmentation": lambda m: npxai.NoiseAugmentation(npxai.LRP(m), n=2, seed=0),
    "InterpolationAugmentation": lambda m: npxai.InterpolationAugmentation(npxai.Gradient(m), 2),
}


@pytest.mark.parametrize("name", ANALYZERS)
@pytest.mark.parametrize("shape", [(0, 1, 8, 8), (2, 0, 8, 8), (0,)])
def test_empty_inputs_are_refused_by_name_in_every_analyzer(name, shape):
    """An empty batch (or an axis of length 0) is refused at the input check, before NumPy's
    'cannot reshape array of size 0' inside an analyzer."""
    analyzer = ANALYZERS[name](small_net())
    message = rf"x is empty \(shape {re_shape(shape)}\); give at least one sample"
    with pytest.raises(ValueError, match=message):
        analyzer(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=message):
        analyzer.attribute(torch.zeros(shape), target=0)


def re_shape(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_inputs_are_refused_by_the_model_and_gradient(backend):
    model, x = small_net(), np.zeros((0, 1, 8, 8))
    for call in (lambda: model(x, backend=backend), lambda: model.trace(x, backend),
                 lambda: npxai.gradient(model, x, backend=backend)):  # fmt: skip
        with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 1, 8, 8\)\)"):
            call()


@pytest.mark.parametrize("name", ANALYZERS)
def test_ragged_lists_are_refused_by_name(name):
    ragged = [[[[0.0] * 8] * 8], [[[0.0] * 8] * 7]]  # the second sample has 7 rows
    message = r"x must be an array or a nested list of one rectangular shape \(a ragged list"
    with pytest.raises(ValueError, match=message):
        ANALYZERS[name](small_net())(ragged)
    dense = npxai.Sequential(L.Linear(2, 1))
    with pytest.raises(ValueError, match=message):
        dense([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match=message):
        npxai.gradient(dense, [[1.0, 2.0], [3.0]])


def test_a_rectangular_list_is_explained_like_its_array():
    model, x = small_net(), np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(
        npxai.Gradient(model)(x.tolist()).attribution, npxai.Gradient(model)(x).attribution
    )


# --- parameters checked at construction --------------------------------------------------------

NAN, INF = float("nan"), float("inf")

BAD_PARAMETERS = [
    (lambda: R.AlphaBetaRule(NAN, 0), "AlphaBetaRule: alpha must be a finite number >= 0, got nan"),
    (lambda: R.AlphaBetaRule(2, NAN), "AlphaBetaRule: beta must be a finite number >= 0, got nan"),
    (lambda: R.AlphaBetaRule(INF, INF), "alpha must be a finite number >= 0, got inf"),
    (lambda: R.AlphaBetaRule(3, 1), r"alpha - beta = 1 and both >= 0, got alpha=3.0, beta=1.0"),
    (lambda: R.AlphaBetaRule("2", 1), "alpha must be a finite number >= 0, got '2'"),
    (lambda: R.ZBoxRule(1, 0), "ZBoxRule: low must be <= high, got low=1, high=0"),
    (lambda: R.ZBoxRule(np.zeros(3), [1, -1, 1]), "ZBoxRule: low must be <= high"),
    (lambda: R.ZBoxRule(np.zeros(3), np.ones(4)), r"low \(3,\) and high \(4,\) must broadcast"),
    (lambda: R.ZBoxRule(NAN, 1), "ZBoxRule: low must be a finite number or an array"),
    (lambda: R.ZBoxRule(0, "1"), "ZBoxRule: high must be a finite number or an array"),
    (lambda: R.GammaRule(INF), "GammaRule: gamma must be a finite number >= 0, got inf"),
    (lambda: R.GammaRule(-0.5), "GammaRule: gamma must be a finite number >= 0, got -0.5"),
    (lambda: R.GammaRule(bias="no"), "GammaRule: bias must be True or False, got 'no'"),
    (lambda: npxai.GradCAM(small_net(), relu=1), "GradCAM: relu must be True or False, got 1"),
    (
        lambda: npxai.compat.captum.Alpha1Beta0Rule(bias=None),
        "Alpha1Beta0Rule: bias must be True or False, got None",
    ),
    (lambda: R.GeneralizedGammaRule(NAN), "GeneralizedGammaRule: gamma must be a finite number"),
    (lambda: R.EpsilonRule(-1e-6), "EpsilonRule: epsilon must be a finite number >= 0, got -1e-06"),
    (lambda: R.EpsilonRule(NAN), "EpsilonRule: epsilon must be a finite number >= 0, got nan"),
    (lambda: R.EpsilonRule(INF), "EpsilonRule: epsilon must be a finite number >= 0, got inf"),
    (lambda: R.NormRule("1e-6"), "NormRule: epsilon must be a finite number >= 0, got '1e-6'"),
    (lambda: R.FlatRule(stabilizer="tanh"), "FlatRule: unknown stabilizer 'tanh'; choose one of"),
    (lambda: R.EpsilonRule(stabilizer=None), "EpsilonRule: unknown stabilizer None"),
    (lambda: R.WSquareRule(bias=1), "WSquareRule: bias must be True or False, got 1"),
    (lambda: R.ZPlusRule(bias=None), "ZPlusRule: bias must be 'positive' or 'none', got None"),
    (lambda: C.FirstN(-1, L.Conv2d), "FirstN: n must be a positive int, got -1"),
    (lambda: C.FirstN(1.5, L.Conv2d), "FirstN: n must be a positive int, got 1.5"),
    (lambda: C.FirstN(2), "FirstN: give one or more layer types"),
    (lambda: C.ByType("Conv2d"), r"ByType: give one or more layer types .* got 'Conv2d'"),
    (lambda: C.FirstOfType(), "FirstOfType: give one or more layer types"),
    (lambda: C.IndexRange(0, 2.5), "IndexRange: stop must be an int, got 2.5"),
    (lambda: C.Keys(3), r"Keys: give one or more layer keys .* got 3"),
    (lambda: C.Composite((C.ByType(L.Conv2d), "epsilon")), "entry 0's rule must be an npxai"),
    (lambda: C.Composite(R.EpsilonRule()), r"entry 0 must be a pair \(selector, rule\)"),
    (lambda: C.Composite(("Conv2d", R.EpsilonRule())), r"entry 0 must be a pair"),
    (lambda: C.Composite(name=3), "Composite: name must be a str or None, got 3"),
    (lambda: C.EpsilonGammaBox(1, 0), "ZBoxRule: low must be <= high"),
    (lambda: C.EpsilonPlus(NAN), "EpsilonRule: epsilon must be a finite number"),
    (
        lambda: npxai.CRP(npxai.LRP(small_net()), "0", npxai.TopNFeatures(2), batch_size=2.5),
        r"CRP: batch_size \(or None\) must be a positive int, got 2.5",
    ),
    (
        lambda: npxai.CRP(npxai.LRP(small_net()), "0", npxai.TopNFeatures(2), batch_size=0),
        r"CRP: batch_size \(or None\) must be a positive int, got 0",
    ),
    (lambda: npxai.TopNFeatures(2, absolute="yes"), "TopNFeatures: absolute must be True or False"),
    (lambda: npxai.LRP(small_net(), record="yes"), "LRP: record must be True or False"),
    (lambda: npxai.SmoothGrad(small_net(), seed="0"), "SmoothGrad: seed must be an int >= 0"),
    (lambda: npxai.SmoothGrad(small_net(), seed=-1), "SmoothGrad: seed must be an int >= 0"),
    (lambda: L.Conv2d(1, 1, 3, bias="no"), "Conv2d: bias must be True or False, got 'no'"),
    (lambda: L.Linear(2, 2, bias=None), "Linear: bias must be True or False, got None"),
    (lambda: L.Linear(True, 2), "in_features must be a positive int, got True"),
    (lambda: L.Conv2d(1, 1, 2.5), "kernel_size must be an int >= 1 or a pair of them, got 2.5"),
    (lambda: L.Conv2d(1, 1, (3, True)), "kernel_size must be an int >= 1"),
    (lambda: L.Conv2d(1, 1, 3, padding=-1), "padding must be 'same', 'valid', an int >= 0"),
    (lambda: L.MaxPool2d(2, padding=-1), "padding must be an int >= 0 or a pair of them"),
    (lambda: L.MaxPool2d(0), "kernel_size must be an int >= 1"),
    (lambda: L.MaxPool2d(2, ceil_mode="no"), "MaxPool2d: ceil_mode must be True or False"),
    (lambda: L.AvgPool2d(2, count_include_pad=2), "AvgPool2d: count_include_pad must be True"),
    (lambda: L.AdaptiveAvgPool2d(True), "output_size must be a positive int or a pair"),
    (lambda: L.BatchNorm2d(3, eps=INF), "BatchNorm2d: eps must be a finite number >= 0, got inf"),
    (lambda: L.BatchNorm1d(3, eps="1e-5"), "BatchNorm1d: eps must be a finite number >= 0"),
    (lambda: L.BatchNorm2d(3, momentum=NAN), r"momentum \(or None\) must be a finite number"),
    (lambda: L.BatchNorm2d(3, affine="yes"), "BatchNorm2d: affine must be True or False"),
    (lambda: L.BatchNorm2d(0), "num_features must be a positive int, got 0"),
    (lambda: L.LeakyReLU(NAN), "LeakyReLU: negative_slope must be a finite number, got nan"),
    (lambda: L.LeakyReLU("0.1"), "LeakyReLU: negative_slope must be a finite number, got '0.1'"),
    (lambda: L.Flatten("1"), "Flatten: start_dim must be an int, got '1'"),
    (lambda: L.Flatten(1, 2.0), "Flatten: end_dim must be an int, got 2.0"),
    (lambda: L.Dropout(NAN), r"dropout probability p must be in \[0, 1\], got nan"),
    (lambda: L.Dropout("0.5"), r"dropout probability p must be in \[0, 1\], got '0.5'"),
    (lambda: L.Softmax(True), "Softmax needs an explicit int dim, got True"),
]


@pytest.mark.parametrize(
    "build, message", BAD_PARAMETERS, ids=[str(i) for i in range(len(BAD_PARAMETERS))]
)
def test_bad_parameters_are_refused_at_construction_by_name(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_long_bad_values_are_shown_shortened():
    with pytest.raises(ValueError) as error:
        R.EpsilonRule("x" * 100_000)
    assert len(str(error.value)) < 200


def test_the_edges_of_every_range_are_accepted():
    """The checks refuse only what is out of range: zeros where >= 0 is asked, equal ZBox bounds,
    NumPy scalars, per-pixel bound arrays, the one-element selectors."""
    assert R.EpsilonRule(0).epsilon == 0 and R.GammaRule(np.float32(0)).gamma == 0
    rule = R.AlphaBetaRule(np.float64(1), 0)
    assert (rule.alpha, rule.beta) == (1.0, 0.0) and type(rule.alpha) is float
    assert (
        repr(R.ZBoxRule(0.5, 0.5))
        == "ZBoxRule(low=0.5, high=0.5, epsilon=1e-06, stabilizer='sign')"
    )
    R.ZBoxRule(np.zeros((1, 8, 8)), np.ones((1, 1, 8)))
    assert C.FirstN(np.int64(1), L.Conv2d).n == 1
    assert C.IndexRange(-2, -1).select([("a", None), ("b", None), ("c", None)]) == ["b"]
    layer = L.Conv2d(np.int64(1), 2, (np.int64(3), 3), bias=np.bool_(False))
    assert layer.kernel_size == (3, 3) and layer.bias is None
    assert L.Dropout(0).p == 0.0 and L.Dropout(1).p == 1.0
    assert L.BatchNorm2d(2, eps=0, momentum=None).eps == 0.0
    assert (
        npxai.CRP(npxai.LRP(small_net()), "0", npxai.TopNFeatures(2), batch_size=1).batch_size == 1
    )
    assert npxai.SmoothGrad(small_net(), seed=np.int64(3)).seed == 3


# --- Explanation.input ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", ANALYZERS)
def test_explanation_input_is_the_callers_array(name, backend):
    """Not a copy (a batch may be large): the documented choice. A list gives a new array."""
    model = small_net()
    analyzer = ANALYZERS[name](model)
    analyzer.backend = backend
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    assert analyzer(x).input is x
    from_list = analyzer(x.tolist()).input
    assert isinstance(from_list, np.ndarray) and from_list is not x
    np.testing.assert_array_equal(from_list, x.astype(np.float64))


def test_from_torch_refuses_nonfinite_weights_by_their_full_key():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with torch.no_grad():
        module[1][0].weight[0, 1] = float("inf")
    with pytest.raises(StateDictError, match=r"1\.0\.weight: contains inf at index \(0, 1\)"):
        npxai.from_torch(module)
    model = npxai.from_torch(module, allow_nonfinite=True)
    assert np.isinf(model.state_dict()["1.0.weight"][0, 1])
