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
    assert e.analyzer == "Gradient" and e.heatmap == "sensitivity" and e.output.shape == (3, 5)
    np.testing.assert_array_equal(e.target, target)
    e = npxai.analyze(x, npxai.InputTimesGradient(ours, backend=backend), target)
    assert_close(e.attribution, x * expected, np.float64)
    assert e.heatmap == "attribution"


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
    assert e.extras["upsampled"].shape == (3, 1, 8, 8) and e.heatmap == "cam"


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
        "Explanation(GradCAM, heatmap='cam'" in text
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
