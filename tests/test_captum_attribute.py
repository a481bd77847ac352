"""``analyzer.attribute(...)`` as Captum users call it, against Captum itself (float64, torch's
threads set by conftest), and the Captum arguments npxai refuses."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from captum.attr import (
    Deconvolution,
    InputXGradient,
    LayerGradCam,
    Saliency,
)
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from conftest import assert_close

import npxai


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(
        conv1=torch.nn.Conv2d(2, 4, 3, padding=1), relu1=torch.nn.ReLU(),
        pool=torch.nn.MaxPool2d(2), conv2=torch.nn.Conv2d(4, 6, 3, padding=1),
        relu2=torch.nn.ReLU(), flatten=torch.nn.Flatten(), fc=torch.nn.Linear(6 * 4 * 4, 5),
    )).double().eval()  # fmt: skip


@pytest.fixture
def x():
    return torch.tensor(np.random.default_rng(0).standard_normal((3, 2, 8, 8)))


TARGET = [0, 4, 2]


def test_saliency_input_x_gradient_guided_and_deconvolution_match_captum(net, x):
    model = npxai.from_torch(net)
    target = torch.tensor(TARGET)  # a Captum user's tensors go in as they are
    expected = Saliency(net).attribute(x, target=target, abs=False).detach().numpy()
    assert_close(npxai.Gradient(model).attribute(x, target=target), expected, np.float64)
    expected = Saliency(net).attribute(x, target=target).detach().numpy()  # Captum's abs=True
    assert_close(npxai.Gradient(model).attribute(x, target, abs=True), expected, np.float64)
    for theirs, ours in [
        (InputXGradient, npxai.InputTimesGradient),
        (CaptumGuidedBackprop, npxai.GuidedBackprop),
        (Deconvolution, npxai.DeconvNet),
    ]:
        expected = theirs(net).attribute(x, target=target).detach().numpy()
        assert_close(ours(net).attribute(x, target=target), expected, np.float64)


@pytest.mark.parametrize("relu", [True, False, None])  # None: Captum's default, False
def test_layer_gradcam_matches_captum(net, x, relu):
    given = {} if relu is None else {"relu_attributions": relu}
    expected = LayerGradCam(net, net.conv2).attribute(x, target=TARGET, **given)
    ours = npxai.GradCAM(net, layer="conv2").attribute(x, target=TARGET, **given)
    assert_close(ours, expected.detach().numpy(), np.float64)
    assert (ours < 0).any() != bool(relu)  # the signed map has negative entries here
    own = npxai.GradCAM(net, layer="conv2", relu=bool(relu))(x.numpy(), TARGET).attribution
    assert_close(own, expected.detach().numpy(), np.float64)
    with pytest.raises(TypeError, match="GradCAM.attribute: relu_attributions must be True or "):
        npxai.GradCAM(net, layer="conv2").attribute(x, TARGET, relu_attributions="no")


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle",
                                    "gausslegendre"])  # fmt: skip
def test_integrated_gradients_matches_captum(net, x, method):
    baselines = 0.1 * torch.tensor(np.random.default_rng(1).standard_normal((3, 2, 8, 8)))
    expected = CaptumIntegratedGradients(net).attribute(
        x, baselines=baselines, target=TARGET, n_steps=16, method=method, internal_batch_size=7
    )
    ours = npxai.IntegratedGradients(net).attribute(
        x, baselines=baselines, target=TARGET, n_steps=16, method=method, internal_batch_size=7
    )
    # Captum rounds its quadrature weights to float32 (integrated_gradients.py: ``torch.tensor(
    # step_sizes).float()``) and makes riemann points with float32 torch.linspace: 1e-8 off
    expected = expected.detach().numpy()
    assert np.abs(ours - expected).max() <= 1e-6 * np.abs(expected).max()


def test_integrated_gradients_attribute_keeps_the_analyzers_values_when_not_given(net, x):
    analyzer = npxai.IntegratedGradients(net, n=5, baseline=0.5, method="riemann_middle")
    expected = analyzer(x.detach().numpy(), TARGET).attribution
    np.testing.assert_array_equal(analyzer.attribute(x, target=TARGET), expected)
    zero = npxai.IntegratedGradients(net, n=5, baseline=0.0, method="riemann_middle")
    np.testing.assert_array_equal(
        analyzer.attribute(x, baselines=0.0, target=TARGET),
        zero(x.detach().numpy(), TARGET).attribution,
    )


def test_smoothgrad_attribute_takes_captums_names_with_an_absolute_stdev(net, x):
    model = npxai.from_torch(net)
    n, stdevs, seed = 4, 0.3, 5
    ours = npxai.SmoothGrad(model, seed=seed).attribute(
        x, target=TARGET, nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=5,
        stdevs=stdevs,
    )  # fmt: skip
    noise = np.random.default_rng(seed).standard_normal((n, *x.shape))
    noisy = x.detach().numpy() + stdevs * noise  # one sigma for every sample, as Captum's stdevs
    expected = np.mean([Saliency(net).attribute(torch.tensor(noisy[k]), target=TARGET,
                        abs=False).detach().numpy() for k in range(n)], axis=0)  # fmt: skip
    assert_close(ours, expected, np.float64)


def test_captum_arguments_without_an_npxai_meaning_are_refused(net, x):
    with pytest.raises(TypeError, match="does not support: additional_forward_args"):
        npxai.Gradient(net).attribute(x, TARGET, additional_forward_args=(1,))
    with pytest.raises(TypeError, match="return_convergence_delta"):
        npxai.IntegratedGradients(net).attribute(x, target=TARGET, return_convergence_delta=True)
    with pytest.raises(TypeError, match="draw_baseline_from_distrib"):
        npxai.SmoothGrad(net).attribute(x, target=TARGET, draw_baseline_from_distrib=True)
    with pytest.raises(TypeError, match="attribute_to_layer_input"):
        npxai.GradCAM(net, "conv2").attribute(x, TARGET, attribute_to_layer_input=True)
    with pytest.raises(ValueError, match="riemann_trapezoid weights sum to"):
        npxai.IntegratedGradients(net).attribute(x, target=TARGET, method="riemann_trapezoid")
    with pytest.raises(ValueError, match="nt_type must be 'smoothgrad'"):
        npxai.SmoothGrad(net).attribute(x, target=TARGET, nt_type="vargrad")
    with pytest.raises(ValueError, match="abs must be False"):
        npxai.SmoothGrad(net).attribute(x, target=TARGET, abs=True)
    with pytest.raises(ValueError, match="stdevs must be one number"):
        npxai.SmoothGrad(net).attribute(x, target=TARGET, stdevs=(0.1, 0.2))
