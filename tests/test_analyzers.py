"""Analyzers of the gradient family against independent computations: torch autograd, explicit
loops over noisy copies and path points, and Captum's implementations."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from captum.attr import Deconvolution, LayerGradCam
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from conftest import assert_close

import npxai
from npxai.analyzers.gradcam import upsample_bilinear
from npxai.analyzers.integrated_gradients import QUADRATURES, quadrature
from npxai.analyzers.smoothgrad import noise_scale

BACKENDS = ["numpy", "numba"]


def torch_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(
        conv1=torch.nn.Conv2d(2, 4, 3, padding=1), relu1=torch.nn.ReLU(), pool=torch.nn.MaxPool2d(2),
        conv2=torch.nn.Conv2d(4, 6, 3, padding=1), relu2=torch.nn.ReLU(),
        flatten=torch.nn.Flatten(), fc=torch.nn.Linear(6 * 4 * 4, 5),
    )).double().eval()  # fmt: skip


@pytest.fixture
def cnn():
    theirs = torch_cnn()
    x = np.random.default_rng(0).standard_normal((3, 2, 8, 8))
    return theirs, npxai.from_torch(theirs), x


def torch_gradient(model, x, target):
    xt = torch.tensor(x, requires_grad=True)
    model(xt)[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    return xt.grad.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_and_input_times_gradient_match_autograd(cnn, backend):
    theirs, ours, x = cnn
    target = np.array([0, 4, 2])
    expected = torch_gradient(theirs, x, target)
    e = npxai.Gradient(ours, backend=backend)(x, target)
    assert_close(e.attribution, expected, np.float64)
    assert (
        e.analyzer == "Gradient" and e.heatmap_preset == "sensitivity" and e.output.shape == (3, 5)
    )
    np.testing.assert_array_equal(e.target, target)
    e = npxai.analyze(x, npxai.InputTimesGradient(ours, backend=backend), target)
    assert_close(e.attribution, x * expected, np.float64)
    assert e.heatmap_preset == "attribution"


def test_default_target_is_the_argmax_and_batch_of_one(cnn):
    theirs, ours, x = cnn
    e = npxai.Gradient(ours)(x[:1])
    assert e.target.tolist() == [int(theirs(torch.tensor(x[:1])).argmax())]
    assert e.attribution.shape == (1, 2, 8, 8)


def test_smoothgrad_is_the_mean_gradient_over_its_documented_noise(cnn):
    _, ours, x = cnn
    n, level, seed = 6, 0.2, 7
    e = npxai.SmoothGrad(ours, n=n, noise_level=level, seed=seed, batch_size=4)(x, target=1)
    sigma = level * (x.reshape(3, -1).max(1) - x.reshape(3, -1).min(1))
    noise = np.random.default_rng(seed).standard_normal((n, *x.shape)) * sigma[:, None, None, None]
    expected = np.mean([npxai.gradient(ours, x + noise[k], target=1) for k in range(n)], axis=0)
    assert_close(e.attribution, expected, np.float64)
    np.testing.assert_allclose(e.extras["sigma"], sigma)
    again = npxai.SmoothGrad(ours, n=n, noise_level=level, seed=seed)(x, target=1)
    np.testing.assert_array_equal(again.attribution, e.attribution)
    other = npxai.SmoothGrad(ours, n=n, noise_level=level, seed=seed + 1)(x, target=1)
    assert not np.allclose(other.attribution, e.attribution)


def test_smoothgrad_noise_scale_is_noise_level_times_each_samples_range():
    x = np.zeros((2, 1, 4, 4))
    x[0, 0, 0, 0], x[1, 0, 1, 1], x[1, 0, 2, 2] = 2.0, 7.0, -3.0  # ranges 2 and 10
    np.testing.assert_allclose(noise_scale(x, 0.1), [0.2, 1.0])


@pytest.mark.parametrize("method", QUADRATURES)
def test_quadrature_weights_sum_to_one_and_integrate_polynomials(method):
    alphas, weights = quadrature(method, 8)
    assert abs(weights.sum() - 1) < 1e-14
    assert ((alphas >= 0) & (alphas <= 1)).all()
    exact_for = {"gauss_legendre": 15, "riemann_trapezoid": 1, "riemann_middle": 1}.get(method, 0)
    for degree in range(exact_for + 1):
        assert abs((weights * alphas**degree).sum() - 1 / (degree + 1)) < 1e-12


@pytest.mark.parametrize("method", QUADRATURES)
def test_integrated_gradients_equals_an_explicit_loop_over_path_points(cnn, method):
    _, ours, x = cnn
    baseline = np.random.default_rng(1).standard_normal(x.shape[1:]) * 0.1
    e = npxai.IntegratedGradients(ours, n=7, baseline=baseline, method=method, batch_size=5)(
        x, [1, 2, 3]
    )
    alphas, weights = quadrature(method, 7)
    integral = sum(
        w * npxai.gradient(ours, baseline + a * (x - baseline), target=[1, 2, 3])
        for a, w in zip(alphas, weights, strict=True)
    )
    assert_close(e.attribution, (x - baseline) * integral, np.float64)


def test_integrated_gradients_completeness_error_falls_as_n_grows():
    torch.manual_seed(4)
    smooth = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    ).double()
    ours = npxai.from_torch(smooth)
    x = np.random.default_rng(4).standard_normal((4, 6)) * 2
    f_x, f_0 = ours(x), ours(np.zeros_like(x))
    for method in QUADRATURES:
        gaps = []
        for n in (4, 16, 64):
            e = npxai.IntegratedGradients(ours, n=n, method=method)(x, target=2)
            gaps.append(np.abs(e.attribution.sum(axis=1) - (f_x[:, 2] - f_0[:, 2])).max())
        assert gaps[2] < gaps[0] / 4, (method, gaps)
    assert gaps[2] < 1e-12  # Gauss-Legendre, last in QUADRATURES: near exact for a smooth path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer", ["conv2", "relu2"])
def test_gradcam_matches_captum_layer_gradcam(cnn, backend, layer):
    theirs, ours, x = cnn
    target = [0, 1, 2]
    e = npxai.GradCAM(ours, layer=layer, backend=backend)(x, target)
    expected = LayerGradCam(theirs, getattr(theirs, layer)).attribute(
        torch.tensor(x), target=target, relu_attributions=True
    )
    assert_close(e.attribution, expected.detach().numpy(), np.float64)
    assert e.extras["upsampled"].shape == (3, 1, 8, 8) and e.heatmap_preset == "cam"


def test_gradcam_on_a_container_layer_uses_its_output():
    model = npxai.models.resnet18(num_classes=4)
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 64))
    by_container = npxai.GradCAM(model, "layer4")(x, 1)
    by_leaf = npxai.GradCAM(model, "layer4.1.relu")(x, 1)
    assert by_container.extras["layer"] == "layer4.1.relu"
    np.testing.assert_array_equal(by_container.attribution, by_leaf.attribution)


def test_upsampling_matches_torch_interpolate():
    maps = np.random.default_rng(3).random((2, 1, 5, 7))
    for size in [(10, 14), (13, 9), (5, 7), (3, 3)]:
        expected = torch.nn.functional.interpolate(
            torch.tensor(maps), size=size, mode="bilinear", align_corners=False
        )
        assert_close(upsample_bilinear(maps, size), expected.numpy(), np.float64)


@pytest.mark.filterwarnings("ignore::UserWarning:captum")
@pytest.mark.parametrize("backend", BACKENDS)
def test_guided_backprop_and_deconvnet_match_captum(cnn, backend):
    theirs, ours, x = cnn
    target = [3, 0, 1]
    for analyzer, peer in [
        (npxai.GuidedBackprop, CaptumGuidedBackprop),
        (npxai.DeconvNet, Deconvolution),
    ]:
        e = analyzer(ours, backend=backend)(x, target)
        expected = peer(theirs).attribute(torch.tensor(x), target=target).detach().numpy()
        assert_close(e.attribution, expected, np.float64)


def test_explanation_prints_readably(cnn):
    _, ours, x = cnn
    text = repr(npxai.GradCAM(ours, "conv2")(x))
    assert (
        "Explanation(GradCAM, heatmap_preset='cam'" in text
        and "extras['upsampled']: float64 (3, 1, 8, 8)" in text
    )


def test_bad_input_is_named(cnn):
    _, ours, x = cnn
    with pytest.raises(ValueError, match="target 5 is out of range for an output of 5 classes"):
        npxai.Gradient(ours)(x, target=5)
    with pytest.raises(ValueError, match=r"one index per sample \(3\)"):
        npxai.IntegratedGradients(ours, n=2)(x, target=[1, 2])
    with pytest.raises(
        ValueError, match="GradCAM: the model has no layer 'features.28'; its layers include conv1"
    ):
        npxai.GradCAM(ours, layer="features.28")
    with pytest.raises(ValueError, match="layer 'fc' outputs shape"):
        npxai.GradCAM(ours, layer="fc")(x)
    with pytest.raises(ValueError, match="unknown quadrature 'simpson'"):
        npxai.IntegratedGradients(ours, method="simpson")
    with pytest.raises(ValueError, match=r"baseline of shape \(3,\) does not broadcast"):
        npxai.IntegratedGradients(ours, baseline=np.zeros(3))(x)
    with pytest.raises(ValueError, match="n must be a positive int"):
        npxai.SmoothGrad(ours, n=0)
    with pytest.raises(TypeError, match="needs an npxai Module .* got function"):
        npxai.Gradient(torch_gradient)


# --- habits users bring (issue 15) ---


def test_a_torch_module_is_converted(cnn):
    theirs, _, x = cnn
    target = np.array([0, 4, 2])
    e = npxai.Gradient(theirs)(x, target)
    assert_close(e.attribution, torch_gradient(theirs, x, target), np.float64)


def test_a_torchvision_resnet18_is_converted():
    import torchvision

    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(num_classes=10).double().eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64))
    analyzer = npxai.Gradient(theirs)
    assert isinstance(analyzer.model, npxai.Module)
    assert_close(analyzer(x, 3).attribution, torch_gradient(theirs, x, [3]), np.float64)


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_gradcams_default_layer_is_the_one_the_command_line_picks(name):
    from npxai import zoo
    from npxai.analyzers.gradcam import feature_layer

    ready = zoo.ready_model(name)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    e = npxai.GradCAM(ready.model)(x, target=1)
    assert e.extras["layer"] == ready.cam_layer == feature_layer(ready.model.trace(x))
    assert e.extras["layer"] == {"vgg16": "avgpool", "resnet18": "layer4.1.relu"}[name]
    named = npxai.GradCAM(ready.model, layer=ready.cam_layer)(x, target=1)
    np.testing.assert_array_equal(e.attribution, named.attribution)


def test_gradcams_default_layer_is_the_last_with_spatial_maps(cnn):
    theirs, ours, x = cnn
    # conv1, relu1 (8x8), pool, conv2, relu2 (4x4), then flatten: relu2 is the last spatial one
    e = npxai.GradCAM(ours)(x, target=[0, 1, 2])
    assert e.extras["layer"] == "relu2"
    expected = LayerGradCam(theirs, theirs.relu2).attribute(
        torch.tensor(x), target=[0, 1, 2], relu_attributions=True
    )
    assert_close(e.attribution, expected.detach().numpy(), np.float64)
    flat = npxai.Sequential(npxai.layers.Flatten(), npxai.layers.Linear(128, 3))
    with pytest.raises(ValueError, match="no layer of the model outputs .* pass layer="):
        npxai.GradCAM(flat)(x)


class FakeTerminal:
    """A stream that says it is a terminal, keeping what is written."""

    def __init__(self, tty: bool = True):
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty, progress", [(True, True), (False, True), (True, False)])
def test_progress_bar_only_on_a_terminal_and_only_if_asked(cnn, monkeypatch, tty, progress):
    _, ours, x = cnn  # 3 samples: n=4 copies at batch 5 are 3 batches
    stream = FakeTerminal(tty)
    monkeypatch.setattr("sys.stderr", stream)
    npxai.SmoothGrad(ours, n=4, batch_size=5, seed=0, progress=progress)(x)
    npxai.IntegratedGradients(ours, n=4, batch_size=5, progress=progress)(x)
    lrp = npxai.LRP(ours, npxai.composites.EpsilonPlus())
    npxai.CRP(lrp, "conv2", npxai.TopNFeatures(2), batch_size=4, progress=progress)(x)
    expected = (
        "\rSmoothGrad: 1/3 batches\rSmoothGrad: 2/3 batches\rSmoothGrad: 3/3 batches\n"
        "\rIntegratedGradients: 1/3 batches\rIntegratedGradients: 2/3 batches"
        "\rIntegratedGradients: 3/3 batches\n\rCRP: 1/2 batches\rCRP: 2/2 batches\n"
    )
    assert stream.text == (expected if tty and progress else "")


def test_a_single_batch_shows_no_progress_bar(cnn, monkeypatch):
    _, ours, x = cnn
    stream = FakeTerminal()
    monkeypatch.setattr("sys.stderr", stream)
    npxai.SmoothGrad(ours, n=2, batch_size=6, seed=0)(x)
    assert stream.text == ""


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_smoothgrad_batch_by_batch_equals_all_copies_at_once_bit_for_bit(cnn, dtype):
    """The former formula: every copy drawn at once, gradients in batches, then the mean."""
    _, _, x = cnn
    ours = npxai.from_torch(torch_cnn().to({np.float64: torch.float64}.get(dtype, torch.float32)))
    x = x.astype(dtype)
    n, level, seed, batch = 5, 0.15, 3, 4
    sigma = noise_scale(x, level).astype(x.dtype)
    noise = np.random.default_rng(seed).standard_normal((n, *x.shape))
    copies = (x + noise.astype(x.dtype) * sigma.reshape(1, -1, 1, 1, 1)).reshape(-1, 2, 8, 8)
    targets = np.tile([1, 0, 3], n)
    grads = np.concatenate([npxai.gradient(ours, copies[i : i + batch], targets[i : i + batch])
                            for i in range(0, len(copies), batch)])  # fmt: skip
    expected = grads.reshape(n, *x.shape).mean(axis=0)
    e = npxai.SmoothGrad(ours, n=n, noise_level=level, seed=seed, batch_size=batch)(x, [1, 0, 3])
    np.testing.assert_array_equal(e.attribution, expected)
    assert e.attribution.dtype == expected.dtype


def test_integrated_gradients_batch_by_batch_equals_all_points_at_once_bit_for_bit(cnn):
    _, ours, x = cnn
    n, batch = 6, 4
    baseline = np.broadcast_to(0.2, x.shape)
    alphas, weights = quadrature("gauss_legendre", n)
    points = (baseline + alphas.reshape(-1, 1, 1, 1, 1) * (x - baseline)).reshape(-1, 2, 8, 8)
    targets = np.tile([1, 0, 3], n)
    grads = np.concatenate([npxai.gradient(ours, points[i : i + batch], targets[i : i + batch])
                            for i in range(0, len(points), batch)])  # fmt: skip
    expected = (x - baseline) * np.tensordot(weights, grads.reshape(n, *x.shape), axes=1)
    e = npxai.IntegratedGradients(ours, n, 0.2, "gauss_legendre", batch)(x, [1, 0, 3])
    np.testing.assert_array_equal(e.attribution, expected)


def test_constructor_parameters_are_checked_where_they_enter(cnn):
    _, ours, _ = cnn
    for bad in [np.inf, "0.1", -0.1, np.nan]:
        with pytest.raises(ValueError, match="SmoothGrad: noise_level must be a finite number"):
            npxai.SmoothGrad(ours, noise_level=bad)
    with pytest.raises(ValueError, match="SmoothGrad: sigma must be a finite number"):
        npxai.SmoothGrad(ours, sigma=-1.0)
    with pytest.raises(ValueError, match="SmoothGrad: batch_size must be a positive int"):
        npxai.SmoothGrad(ours, batch_size=2.0)
    with pytest.raises(ValueError, match="IntegratedGradients: baseline must be a number"):
        npxai.IntegratedGradients(ours, baseline="zero")
    with pytest.raises(ValueError, match="IntegratedGradients: baseline must be finite"):
        npxai.IntegratedGradients(ours, baseline=np.full(3, np.nan))
    with pytest.raises(ValueError, match="IntegratedGradients: n must be a positive int"):
        npxai.IntegratedGradients(ours, n=True)
    for cls in (npxai.SmoothGrad, npxai.IntegratedGradients):
        with pytest.raises(TypeError, match="progress must be True or False"):
            cls(ours, progress="yes")


def test_explanation_repr_shows_weighted_targets_by_shape():
    model = npxai.Sequential(npxai.layers.Linear(4, 3))
    x = np.random.default_rng(0).random((2, 4))
    weighted = npxai.Gradient(model)(x, target=np.array([0.5, 0.5, 0.0]))
    assert "target: weights (2, 3)" in repr(weighted)
    assert "target: [1, 1]" in repr(npxai.Gradient(model)(x, target=1))
