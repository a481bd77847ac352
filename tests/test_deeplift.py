"""DeepLift and DeepLiftShap against Captum 0.9.0's, attributions and multipliers
(``multiply_by_inputs=False``), float64 to 1e-10, on ReLU CNNs with max pooling, average pooling
and batch norm (eval mode, drawn running statistics) and on an MLP with ReLU, Sigmoid and
LeakyReLU, on the numpy and numba backends, several targets, random baselines and inputs that
equal their baseline in places (the gradient fallback); summation to delta on drawn shapes
(float64 1e-12, float32 1e-5 of the summed terms); the Rescale and max-pool rules written out in
NumPy on small nets; torch's gradient where the input is the baseline; the two backends against
each other; Captum's hook order where two non-linear modules follow each other; the errors by
name."""

import warnings

import numpy as np
import pytest
import torch
from captum.attr import DeepLift as CaptumDeepLift
from captum.attr import DeepLiftShap as CaptumDeepLiftShap
from conftest import assert_close, relative_error
from hypothesis import given, settings
from hypothesis import strategies as st

import npxai
from npxai import layers as L
from npxai.analyzers.deeplift import DeepLift, DeepLiftShap
from npxai.errors import BackendError, UnsupportedLayerError

nn = torch.nn


def drawn_batch_norm(bn: nn.BatchNorm2d, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters."""
    with torch.no_grad():
        bn.running_mean.normal_(generator=generator)
        bn.running_var.uniform_(0.5, 2.0, generator=generator)
        bn.weight.normal_(generator=generator)
        bn.bias.normal_(generator=generator)


def torch_cnn(pool: str) -> nn.Module:
    """A ReLU CNN for (2, 8, 8) inputs, 3 outputs, with max or average pooling and batch norm.
    A linear layer stands between any two non-linear modules (see test_captum_hook_order)."""
    torch.manual_seed(0)
    first_pool = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), first_pool, nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(20, 6), nn.ReLU(), nn.Linear(6, 3),
    ).double().eval()  # fmt: skip
    drawn_batch_norm(net[2], torch.Generator().manual_seed(1))
    return net


def torch_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.Sigmoid(), nn.Linear(6, 4),
        nn.LeakyReLU(0.1), nn.Linear(4, 3),
    ).double().eval()  # fmt: skip


NETS = {"cnn_max": lambda: torch_cnn("max"), "cnn_avg": lambda: torch_cnn("avg"), "mlp": torch_mlp}
SHAPES = {"cnn_max": (2, 8, 8), "cnn_avg": (2, 8, 8), "mlp": (5,)}


def captum(method, net, x, baselines, target, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's note that it sets hooks
        result = method(net).attribute(
            torch.tensor(x), torch.tensor(baselines), target=target, **kwargs
        )
    if isinstance(result, tuple):
        return tuple(r.detach().numpy() for r in result)
    return result.detach().numpy()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("target", [None, 1, [2, 0, 1]])
def test_deeplift_equals_captums(name, backend, target):
    net = NETS[name]()
    model = npxai.from_torch(net)
    rng = np.random.default_rng(len(name) + (target is None))
    x = rng.standard_normal((3, *SHAPES[name]))
    baseline = rng.standard_normal(x.shape)
    x[0, ..., :3], baseline[0] = 0, 0  # equal activations: the gradient fallback (|Delta z| < eps)
    theirs_target = net(torch.tensor(x)).argmax(1).tolist() if target is None else target
    expected, expected_delta = captum(
        CaptumDeepLift, net, x, baseline, theirs_target, return_convergence_delta=True
    )
    explanation = DeepLift(model, baseline, backend=backend)(x, target)
    assert_close(explanation.attribution, expected, np.float64)
    assert explanation.attribution.dtype == np.float64
    assert np.array_equal(explanation.target, np.broadcast_to(theirs_target, 3))
    assert explanation.extras["delta"].shape == expected_delta.shape
    attribution, delta = DeepLift(model, backend=backend).attribute(
        torch.tensor(x), torch.tensor(baseline), target=theirs_target, return_convergence_delta=True
    )
    assert_close(attribution, expected, np.float64)
    scale = np.abs(attribution).sum(axis=tuple(range(1, x.ndim))).max()
    assert np.abs(delta).max() <= 1e-12 * scale
    multipliers = captum(
        lambda net: CaptumDeepLift(net, multiply_by_inputs=False), net, x, baseline, theirs_target
    )
    ours = DeepLift(model, baseline, multiply_by_inputs=False, backend=backend)(x, target)
    assert_close(ours.attribution, multipliers, np.float64)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", list(NETS))
def test_deeplift_shap_equals_captums(name, backend):
    net = NETS[name]()
    model = npxai.from_torch(net)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, *SHAPES[name]))
    baselines = rng.standard_normal((4, *SHAPES[name]))
    expected, expected_delta = captum(
        CaptumDeepLiftShap, net, x, baselines, [1, 2], return_convergence_delta=True
    )
    explanation = DeepLiftShap(model, baselines, backend=backend)(x, [1, 2])
    assert_close(explanation.attribution, expected, np.float64)
    assert explanation.extras["delta"].shape == expected_delta.shape == (8,)
    assert explanation.output.shape == (2, 3)
    assert np.array_equal(explanation.target, [1, 2])
    multipliers = captum(
        lambda net: CaptumDeepLiftShap(net, multiply_by_inputs=False), net, x, baselines, [1, 2]
    )
    ours = DeepLiftShap(model, baselines, multiply_by_inputs=False, backend=backend)(x, [1, 2])
    assert_close(ours.attribution, multipliers, np.float64)
    attribution = DeepLiftShap(net, baselines[:2], backend=backend).attribute(  # a torch module
        x, torch.tensor(baselines), target=[1, 2]
    )
    assert_close(attribution, expected, np.float64)


def test_captum_hook_order():
    """Where ReLU feeds MaxPool2d directly, Captum's hooks give the ReLU the signal before the max
    pool's rule replaced it: its result misses summation to delta by far, npxai's does not (the
    module's docstring states the difference)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    ).double().eval()  # fmt: skip
    rng = np.random.default_rng(0)
    x, baseline = rng.standard_normal((2, 2, 8, 8)), rng.standard_normal((2, 2, 8, 8))
    theirs, their_delta = captum(CaptumDeepLift, net, x, baseline, 1, return_convergence_delta=True)
    ours = DeepLift(npxai.from_torch(net), baseline)(x, 1)
    scale = np.abs(theirs).sum(axis=(1, 2, 3)).max()
    assert np.abs(their_delta).max() > 1e-3 * scale
    assert np.abs(ours.extras["delta"]).max() < 1e-12 * scale
    assert relative_error(ours.attribution, theirs) > 1e-3


@settings(max_examples=8, deadline=None)
@given(
    data=st.data(),
    batch=st.integers(1, 3),
    channels=st.integers(1, 3),
    size=st.integers(2, 7),
    dtype=st.sampled_from([np.float32, np.float64]),
    backend=st.sampled_from(["numpy", "numba"]),
)
def test_summation_to_delta(data, batch, channels, size, dtype, backend):
    """``sum R = f_t(x) - f_t(x0)`` (DeepLiftShap: the mean over the baselines), the outputs from
    the forward pass; ReLU directly before MaxPool2d, overlapping windows, zeros shared by the
    input and the baseline (the gradient fallback)."""
    seed = data.draw(st.integers(0, 2**31), label="seed")
    npxai.manual_seed(seed)
    model = npxai.Sequential(
        L.Conv2d(channels, 3, 3, padding=1), L.ReLU(), L.MaxPool2d(2, stride=1), L.Tanh(),
        L.Flatten(), L.Linear(3 * (size - 1) ** 2, 5),
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, size, size)).astype(dtype)
    baselines = rng.standard_normal((2, channels, size, size)).astype(dtype)
    x[..., 0, :], baselines[..., 0, :] = 0, 0
    target = data.draw(st.integers(0, 4), label="target")
    tolerance = {np.float32: 1e-5, np.float64: 1e-12}[dtype]

    explanation = DeepLift(model, baselines[0], backend=backend)(x, target)
    assert explanation.attribution.dtype == dtype
    expected = model(x)[:, target] - model(np.broadcast_to(baselines[0], x.shape))[:, target]
    sums = explanation.attribution.sum(axis=(1, 2, 3), dtype=np.float64)
    scale = np.abs(explanation.attribution).sum(axis=(1, 2, 3)).max() + np.abs(expected).max()
    assert np.abs(sums - expected).max() <= tolerance * scale

    shap = DeepLiftShap(model, baselines, backend=backend)(x, target)
    expected = model(x)[:, target] - model(baselines)[:, target].mean()
    sums = shap.attribution.sum(axis=(1, 2, 3), dtype=np.float64)
    assert np.abs(sums - expected).max() <= tolerance * scale


def test_rescale_rule_by_hand():
    """``y = V relu(W x + b) + c``: ``m_x = W^T (r * V_t)``, ``r = Delta relu(h) / Delta h``."""
    rng = np.random.default_rng(0)
    w, b, v, c = (rng.standard_normal(s) for s in ((6, 4), 6, (3, 6), 3))
    model = npxai.Sequential(L.Linear(4, 6), L.ReLU(), L.Linear(6, 3))
    model.load_state_dict({"0.weight": w, "0.bias": b, "2.weight": v, "2.bias": c})
    x, x0 = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    h, h0 = x @ w.T + b, x0 @ w.T + b
    rescale = (np.maximum(h, 0) - np.maximum(h0, 0)) / (h - h0)
    multipliers = (rescale * v[2]) @ w
    explanation = DeepLift(model, x0)(x, 2)
    assert_close(explanation.attribution, (x - x0) * multipliers, np.float64)
    assert_close(
        DeepLift(model, x0, multiply_by_inputs=False)(x, 2).attribution, multipliers, np.float64
    )


def test_max_pool_rule_by_hand():
    """``y = w max(x) + c`` over one 2x2 window: ``u = max(o, o0)``; ``w (u - o0)`` lands on the
    maximum of ``x``, ``w (o - u)`` on that of ``x0``; the contribution is what lands."""
    model = npxai.Sequential(L.MaxPool2d(2), L.Flatten(), L.Linear(1, 1))
    model.load_state_dict({"2.weight": np.array([[-1.5]]), "2.bias": np.array([0.3])})
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, x0 = rng.standard_normal((1, 1, 2, 2)), rng.standard_normal((1, 1, 2, 2))
        o, o0 = x.max(), x0.max()
        top = max(o, o0)
        expected = np.zeros(4)
        expected[x.argmax()] += -1.5 * (top - o0)
        expected[x0.argmax()] += -1.5 * (o - top)
        attribution = DeepLift(model, x0)(x, 0).attribution
        assert_close(attribution.reshape(4), expected, np.float64)


@pytest.mark.parametrize("name", ["cnn_max", "mlp"])
def test_gradient_where_input_is_baseline(name):
    """``x = x0``: every ``Delta z`` is 0, each non-linearity passes its gradient, and the
    multipliers are torch's input gradient; the attribution is zero."""
    net = NETS[name]()
    x = np.random.default_rng(0).standard_normal((2, *SHAPES[name]))
    xt = torch.tensor(x, requires_grad=True)
    net(xt)[:, 2].sum().backward()
    model = npxai.from_torch(net)
    multipliers = DeepLift(model, x, multiply_by_inputs=False)(x, 2).attribution
    assert_close(multipliers, xt.grad.numpy(), np.float64)
    assert not DeepLift(model, x)(x, 2).attribution.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_agree(dtype):
    model = npxai.from_torch(torch_cnn("max"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 8, 8)).astype(dtype)
    baselines = rng.standard_normal((3, 2, 8, 8)).astype(dtype)
    tolerance = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    for analyzer in (DeepLift, DeepLiftShap):
        reference = baselines if analyzer is DeepLiftShap else baselines[0]
        ours = analyzer(model, reference, backend="numba")(x).attribution
        expected = analyzer(model, reference, backend="numpy")(x).attribution
        assert ours.dtype == expected.dtype == dtype
        assert relative_error(ours, expected) <= tolerance


def test_errors():
    model = npxai.from_torch(torch_cnn("max"))
    x = np.zeros((2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"baseline of shape \(3, 8, 8\) does not fit the input"):
        DeepLift(model, np.zeros((3, 8, 8)))(x)
    with pytest.raises(ValueError, match=r"\(2, 2, 8, 8\), \(1, 2, 8, 8\) or \(2, 8, 8\)"):
        DeepLift(model, np.zeros((3, 2, 8, 8)))(x)
    with pytest.raises(ValueError, match="DeepLift: baseline must be finite"):
        DeepLift(model, np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="DeepLift: baseline must be a number"):
        DeepLift(model, "zeros")
    with pytest.raises(ValueError, match=r"B >= 1 baselines.*got shape \(0, 2, 8, 8\)"):
        DeepLiftShap(model, np.zeros((0, 2, 8, 8)))
    with pytest.raises(ValueError, match="DeepLiftShap: baselines must be an array"):
        DeepLiftShap(model, 0.0)
    with pytest.raises(ValueError, match="DeepLiftShap: baselines must be finite"):
        DeepLiftShap(model, np.full((2, 2, 8, 8), np.inf))
    with pytest.raises(ValueError, match=r"baselines of shape \(2, 2, 4, 4\) do not fit.*\(B, 2"):
        DeepLiftShap(model, np.zeros((2, 2, 4, 4)))(x)
    with pytest.raises(ValueError, match="DeepLift: eps must be a finite number >= 0"):
        DeepLift(model, eps=-1.0)
    with pytest.raises(TypeError, match="DeepLiftShap: multiply_by_inputs must be True or False"):
        DeepLiftShap(model, np.zeros((2, 2, 8, 8)), multiply_by_inputs=1)
    with pytest.raises(TypeError, match="additional_forward_args"):
        DeepLift(model).attribute(x, additional_forward_args=(1,))
    with pytest.raises(BackendError, match="DeepLift does not run on the cuda backend"):
        DeepLift(model, backend="cuda")
    with npxai.use_backend("cuda"), pytest.raises(BackendError, match="DeepLiftShap does not"):
        DeepLiftShap(model, np.zeros((2, 2, 8, 8)))(x)


@pytest.mark.parametrize(
    ("layer", "kind"), [(L.Softmax(dim=1), "Softmax"), (L.LayerNorm(3), "LayerNorm")]
)
def test_unsupported_layer(layer, kind):
    model = npxai.Sequential(L.Linear(4, 3), layer)
    with pytest.raises(UnsupportedLayerError, match=rf"layer '1' \({kind}\) has no DeepLIFT rule"):
        DeepLift(model)
    with pytest.raises(UnsupportedLayerError) as error:
        DeepLiftShap(model, np.zeros((2, 4)))
    assert (error.value.key, error.value.layer_type) == ("1", kind)
