"""npxai.models against torchvision: every constructor loads the matching torchvision state dict
(random weights, no download) strictly, by key, and reproduces its logits."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision
from conftest import assert_close

import npxai

NAMES = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
         "resnet18", "resnet34", "resnet50"]  # fmt: skip


def randomise_batch_norms(model: torch.nn.Module, seed: int) -> None:
    """Give every batch norm non-trivial running statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.rand(c, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(c, generator=generator) - 0.5)


def numpy_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", NAMES)
def test_constructor_loads_torchvision_weights_and_reproduces_logits(name):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(weights=None, num_classes=10).eval()
    randomise_batch_norms(theirs, 1)
    ours = getattr(npxai.models, name)(num_classes=10)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict(numpy_state(theirs))
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    assert_close(ours(x), expected, np.float32)  # the default backend: compiled kernels


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", ["vgg11_bn", "resnet18"])
def test_float64_logits_and_gradient_and_from_torch(name, backend):
    """In float64 the converted model and the constructor agree with torch to 1e-10, on both
    CPU backends."""
    torch.manual_seed(1)
    theirs = getattr(torchvision.models, name)(weights=None, num_classes=7).double().eval()
    randomise_batch_norms(theirs, 2)
    constructed = getattr(npxai.models, name)(num_classes=7)
    constructed.load_state_dict(numpy_state(theirs))
    converted = npxai.from_torch(theirs)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    xt = torch.tensor(x, requires_grad=True)
    y = theirs(xt)
    y[:, 3].sum().backward()
    for ours in (constructed, converted):
        assert_close(ours(x, backend=backend), y.detach().numpy(), np.float64)
        assert_close(npxai.gradient(ours, x, 3, backend), xt.grad.numpy(), np.float64)


def test_lenet_key_layout_and_logits():
    torch.manual_seed(2)
    twin = torch.nn.Sequential(OrderedDict(
        conv1=torch.nn.Conv2d(1, 6, 3, padding=1), relu1=torch.nn.ReLU(), pool1=torch.nn.MaxPool2d(2),
        conv2=torch.nn.Conv2d(6, 16, 3, padding=1), relu2=torch.nn.ReLU(), pool2=torch.nn.MaxPool2d(2),
        flatten=torch.nn.Flatten(), fc1=torch.nn.Linear(16 * 3 * 3, 120), relu3=torch.nn.ReLU(),
        fc2=torch.nn.Linear(120, 84), relu4=torch.nn.ReLU(), fc3=torch.nn.Linear(84, 4),
    )).double()  # fmt: skip
    ours = npxai.models.lenet(num_classes=4, input_size=12)
    ours.load_state_dict(numpy_state(twin))
    x = np.random.default_rng(2).standard_normal((3, 1, 12, 12))
    assert_close(ours(x), twin(torch.tensor(x)).detach().numpy(), np.float64)


def test_default_initialisation_matches_torch_bounds():
    """New layers draw from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like torch, and are seeded."""
    npxai.manual_seed(3)
    a = npxai.layers.Conv2d(4, 8, 3).weight
    npxai.manual_seed(3)
    b = npxai.layers.Conv2d(4, 8, 3).weight
    np.testing.assert_array_equal(a, b)
    bound = 1 / np.sqrt(4 * 9)
    assert a.dtype == np.float32 and np.abs(a).max() <= bound and np.abs(a).max() > 0.8 * bound
