"""``backend="cuda"`` end to end, under Numba's CUDA simulator (tests/conftest.py; a real GPU with
NPXAI_TEST_CUDA=device): whole models, every analyzer and every LRP rule against the NumPy
reference, what crosses between host and device, the parameter cache, and the errors."""

import importlib.util

import numpy as np
import pytest
from conftest import relative_error
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import config, cuda

import npxai
from npxai import composites as C
from npxai import layers as L
from npxai import lrp
from npxai import rules as R
from npxai.backend import BackendError, cuda_missing
from npxai.device import to_host

#: float64 on the device against the float64 reference: only the order of the sums differs.
TOLERANCE = {np.float64: 1e-10, np.float32: 2e-4}


def small_net(seed: int) -> npxai.Sequential:
    """Every layer kind the kernels cover, on 2x4x4 inputs: conv, batch norm, ReLU, max pool, a
    residual block, a depthwise conv, ReLU6, average and adaptive pooling, flatten, linear.
    Small, because the simulator runs every thread of every block in Python."""
    npxai.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bn = L.BatchNorm2d(3)
    bn.running_mean = rng.standard_normal(3).astype(np.float32) * 0.1
    bn.running_var = rng.random(3).astype(np.float32) + 0.5
    bn.weight = rng.random(3).astype(np.float32) + 0.5
    bn.bias = rng.standard_normal(3).astype(np.float32) * 0.1
    return npxai.Sequential(
        L.Conv2d(2, 3, 3, padding=1), bn, L.ReLU(), L.MaxPool2d(2, stride=1),
        npxai.Residual({"conv1": L.Conv2d(3, 3, 3, padding=1), "relu": L.ReLU(),
                        "conv2": L.Conv2d(3, 3, 1)}),
        L.ReLU(), L.Conv2d(3, 3, 3, padding=1, groups=3), L.ReLU6(), L.AvgPool2d(2, stride=1),
        L.AdaptiveAvgPool2d((1, 2)), L.Flatten(), L.Linear(6, 3),
    )  # fmt: skip


def dense_net(seed: int) -> npxai.Sequential:
    """The smallest net with a convolutional and a dense layer, for the rule-by-rule tests."""
    npxai.manual_seed(seed)
    return npxai.Sequential(L.Conv2d(2, 3, 3, padding=1), L.ReLU(), L.Flatten(), L.Linear(48, 3))


def inputs(seed: int, dtype=np.float64, n: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2, 4, 4)).astype(dtype)


def assert_agrees(actual, expected: np.ndarray, scale: float | None = None) -> None:
    assert isinstance(actual, np.ndarray), type(actual)  # host input: NumPy results
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    error = relative_error(actual, expected, scale)
    assert error <= TOLERANCE[expected.dtype.type], f"relative error {error:.2e}"


@pytest.mark.skipif(not config.ENABLE_CUDASIM, reason="about the simulator only")
def test_layers_take_device_arrays_whose_shapes_refuse_negative_indices():
    """Both simulators (numba's, and numba-cuda's of the cuda extra) give device arrays a shape
    that refuses negative indices; npxai's own code must not use them on device arrays."""
    device_x = cuda.to_device(np.ones((2, 3)))
    with pytest.raises(IndexError):
        device_x.shape[-1]
    layer = L.Linear(3, 2)
    out = to_host(layer(device_x, backend="cuda"))
    assert_agrees(out, layer(np.ones((2, 3)), backend="numpy"))


@settings(max_examples=2)
@given(seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]),
       n=st.integers(1, 2))  # fmt: skip
def test_forward_and_gradient_match_the_reference(seed, dtype, n):
    model, x = small_net(seed), inputs(seed, dtype, n)
    assert_agrees(model(x, backend="cuda"), model(x, backend="numpy"))
    assert_agrees(
        npxai.gradient(model, x, backend="cuda"), npxai.gradient(model, x, backend="numpy")
    )


ANALYZERS = {
    "Gradient": lambda m, b: npxai.Gradient(m, backend=b),
    "InputTimesGradient": lambda m, b: npxai.InputTimesGradient(m, backend=b),
    "SmoothGrad": lambda m, b: npxai.SmoothGrad(m, n=2, seed=1, backend=b),
    "IntegratedGradients": lambda m, b: npxai.IntegratedGradients(m, n=2, backend=b),
    "GradCAM": lambda m, b: npxai.GradCAM(m, layer="4", backend=b),
    "GuidedBackprop": lambda m, b: npxai.GuidedBackprop(m, backend=b),
    "DeconvNet": lambda m, b: npxai.DeconvNet(m, backend=b),
}


@pytest.mark.parametrize("name", ANALYZERS)
def test_every_gradient_family_analyzer_matches_the_reference(name):
    model, x = small_net(3), inputs(3)
    ours = ANALYZERS[name](model, "cuda")(x, target=2)
    reference = ANALYZERS[name](model, "numpy")(x, target=2)
    assert_agrees(ours.attribution, reference.attribution)
    assert_agrees(ours.output, reference.output)
    np.testing.assert_array_equal(ours.target, reference.target)
    if name == "GradCAM":
        assert_agrees(ours.extras["upsampled"], reference.extras["upsampled"])


def assert_step_agrees(model: npxai.Module, key: str, rule: R.Rule, x: np.ndarray) -> None:
    """One layer's LRP step on the device against the NumPy step, at the same recorded point."""
    reference_trace, device_trace = model.trace(x, "numpy"), model.trace(x, "cuda")
    out = reference_trace[key].output
    relevance = np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype)
    expected = lrp.step(reference_trace[key], rule, relevance, "numpy")
    actual = to_host(lrp.step(device_trace[key], rule, cuda.to_device(relevance), "cuda"))
    for a, b in zip(
        *(v if isinstance(v, tuple) else (v,) for v in (actual, expected)), strict=True
    ):
        assert_agrees(a, b)


DENSE_RULES = [
    R.ZeroRule(), R.EpsilonRule(0.1), R.EpsilonRule(0.1, stabilizer="clip"),
    R.EpsilonRule(0.1, stabilizer="zero"), R.NormRule(), R.GammaRule(0.25),
    R.GammaRule(0.25, bias=False), R.GeneralizedGammaRule(0.25), R.WSquareRule(),
    R.WSquareRule(bias=False), R.FlatRule(), R.ZPlusRule(), R.ZPlusRule(bias="none"),
    R.AlphaBetaRule(2, 1), R.AlphaBetaRule(1, 0), R.GradientRule(), R.ZBoxRule(-3.0, 3.0),
]  # fmt: skip


@pytest.mark.parametrize("rule", DENSE_RULES, ids=repr)
def test_every_rule_on_a_linear_layer_matches_the_reference(rule):
    """Inputs of both signs, so that every term of every rule has work to do."""
    npxai.manual_seed(1)
    x = np.random.default_rng(1).standard_normal((2, 7))
    assert_step_agrees(npxai.Sequential(L.Linear(7, 5)), "0", rule, x)


@pytest.mark.parametrize(
    "rule", [R.EpsilonRule(0.1), R.GeneralizedGammaRule(0.25), R.AlphaBetaRule(2, 1),
             R.FlatRule(), R.ZBoxRule(-3.0, np.linspace(2, 3, 8).reshape(2, 4, 1))], ids=repr
)  # fmt: skip
@pytest.mark.parametrize("groups", [1, 2])
def test_rules_on_a_convolution_match_the_reference(rule, groups):
    npxai.manual_seed(2)
    conv = L.Conv2d(2, 4, 3, stride=2, padding=1, groups=groups)
    assert_step_agrees(npxai.Sequential(conv), "0", rule, inputs(2))


PARAMETER_FREE = [
    (L.MaxPool2d(2, stride=1), R.AveragePoolRule()), (L.MaxPool2d(2), R.EpsilonRule(0.01)),
    (L.AvgPool2d(2, stride=1, padding=1), R.EpsilonRule(0.01, stabilizer="clip")),
    (L.AdaptiveAvgPool2d((3, 2)), R.ZeroRule()), (L.BatchNorm2d(2), R.EpsilonRule(0.01)),
    (L.BatchNorm2d(2), R.GradientRule()), (L.ReLU6(), R.PassRule()), (L.Flatten(), R.PassRule()),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "rule"), PARAMETER_FREE, ids=repr)
def test_rules_on_pools_batch_norm_and_activations_match_the_reference(layer, rule):
    assert_step_agrees(npxai.Sequential(layer), "0", rule, inputs(4))


@pytest.mark.parametrize("rule", [R.EpsilonRule(0.01), R.ZeroRule(), R.NormRule(0.1, "clip")])
def test_rules_on_a_residual_sum_match_the_reference(rule):
    block = npxai.Residual(L.ReLU(), L.Identity())
    assert_step_agrees(block, "add", rule, inputs(5))


@pytest.mark.parametrize("preset", ["EpsilonGammaBox", "EpsilonAlpha2Beta1Flat"])
def test_presets_on_a_whole_model_in_float32(preset):
    make = getattr(C, preset)
    composite = make(low=-3.0, high=3.0) if preset == "EpsilonGammaBox" else make()
    model, x = small_net(7), inputs(7, np.float32)
    ours = npxai.LRP(model, composite, backend="cuda", record=True)(x)
    reference = npxai.LRP(model, composite, backend="numpy", record=True)(x)
    assert_agrees(ours.attribution, reference.attribution)
    for key, expected in reference.extras["relevance"].items():  # on the host, layer by layer
        for a, b in zip(
            *(
                v if isinstance(v, tuple) else (v,)
                for v in (ours.extras["relevance"][key], expected)
            ),
            strict=True,
        ):
            assert_agrees(a, b, scale=np.abs(b).max() + 1e-30)


class AbsInputRule(R.LinearRule):
    """A custom rule: ``x' = |x|``, ``W' = W+``, no bias."""

    def __init__(self):
        super().__init__(1e-3, "sign")

    def groups(self):
        return [R.Group([R.Term(np.abs, R.positive, None)])]


def test_a_custom_input_modifier_runs_on_the_host():
    """An input modifier without a device kernel (a custom one, or ZBox's bounds above) runs on
    the host: x goes there, x' comes back."""
    npxai.manual_seed(3)
    x = np.random.default_rng(3).standard_normal((2, 7))
    assert_step_agrees(npxai.Sequential(L.Linear(7, 5)), "0", AbsInputRule(), x)


def test_device_inputs_give_device_results():
    model, x = small_net(9), inputs(9)
    e = npxai.LRP(model, C.EpsilonPlusFlat(), backend="cuda")(cuda.to_device(x))
    for name in ("attribution", "output", "input"):
        value = getattr(e, name)
        assert not isinstance(value, np.ndarray) and hasattr(value, "copy_to_host"), name
    reference = npxai.LRP(model, C.EpsilonPlusFlat(), backend="numpy")(x)
    assert_agrees(e.attribution.copy_to_host(), reference.attribution)
    y = model(cuda.to_device(x), backend="cuda")
    assert hasattr(y, "copy_to_host")
    assert_agrees(y.copy_to_host(), model(x, backend="numpy"))


def test_parameters_go_once_and_activations_stay_on_the_device(monkeypatch):
    """After the first call, an explanation sends the input and the one-hot seed to the device
    (no parameter), and reads back the logits (for the targets, and the result), the input and
    the attribution (the result); no activation and no intermediate relevance. ``(1,)`` arrays
    are the counters of the kernels that ask whether an array has non-zero or non-finite
    entries."""
    model, x = small_net(10), inputs(10)
    analyzer = npxai.LRP(model, C.EpsilonGammaBox(-3.0, 3.0), backend="cuda")
    first = analyzer(x).attribution
    sent, read = [], []
    send, device_array = cuda.to_device, type(cuda.device_array(1))
    copy_to_host = device_array.copy_to_host

    def record_send(a, *args, **kwargs):
        sent.append(np.shape(a))
        return send(a, *args, **kwargs)

    def record_read(self, *args, **kwargs):
        read.append(tuple(self.shape))
        return copy_to_host(self, *args, **kwargs)

    monkeypatch.setattr(cuda, "to_device", record_send)
    monkeypatch.setattr(device_array, "copy_to_host", record_read)
    second = analyzer(x).attribution
    # ZBox's bounds are input modifiers without a kernel: x goes to the host, the bounds come back
    assert sorted(set(sent) - {(1,)}) == [(1, 2, 4, 4), (1, 3)], sent
    assert set(read) - {(1,)} == {(1, 2, 4, 4), (1, 3)}, read
    np.testing.assert_array_equal(first, second)


def test_changed_parameters_reach_the_device():
    model, x = small_net(12), inputs(12)
    model(x, backend="cuda")  # parameters cached
    other = small_net(13)
    model.load_state_dict(other.state_dict())
    assert_agrees(model(x, backend="cuda"), other(x, backend="numpy"))
    model[-1].weight = np.zeros_like(model[-1].weight)
    np.testing.assert_array_equal(model(x, backend="cuda"), np.broadcast_to(model[-1].bias, (1, 3)))


def test_errors_name_what_is_wrong():
    model, x = small_net(14), inputs(14)
    with pytest.raises(TypeError, match="x is a device array .* but the backend is 'numba'"):
        model(cuda.to_device(x), backend="numba")
    bad = x.copy()
    bad[0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"x contains nan at index \(0, 1, 2, 3\)"):
        model(cuda.to_device(bad), backend="cuda")
    with pytest.raises(ValueError, match=r"x contains nan at index \(0, 1, 2, 3\)"):
        npxai.Gradient(model, backend="cuda")(bad)
    with pytest.raises(BackendError, match="CRP does not run on the cuda backend"):
        npxai.CRP(npxai.LRP(model, backend="cuda"), layer="0", features=npxai.TopNFeatures(1))(x)

    class OwnStabilizer(R.EpsilonRule):
        def stabilize(self, z):
            return z + 1

    lrp = npxai.LRP(
        model, C.EpsilonPlus() + [(C.ByType(L.Linear), OwnStabilizer())], backend="cuda"
    )
    with pytest.raises(ValueError, match=r"OwnStabilizer overrides stabilize\(\); LRP steps take"):
        lrp(x)


@pytest.mark.parametrize(("has_package", "has_gpu"), [(False, False), (True, False), (False, True)])
def test_a_missing_gpu_or_package_is_named(monkeypatch, has_package, has_gpu):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0)
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: (find_spec("numpy") if has_package else None)
        if name == "numba_cuda" else find_spec(name, *a),
    )  # fmt: skip
    monkeypatch.setattr(cuda, "is_available", lambda: has_gpu)
    cuda_missing.cache_clear()
    try:
        with pytest.raises(BackendError, match="backend 'cuda' is not available") as error:
            npxai.gradient(small_net(0), inputs(0), backend="cuda")
    finally:
        cuda_missing.cache_clear()
    message = str(error.value)
    assert ("numba-cuda package is not installed" in message) == (not has_package)
    assert ('pip install "npxai[cuda]"' in message) == (not has_package)
    assert ("no CUDA GPU is usable" in message) == (not has_gpu)
