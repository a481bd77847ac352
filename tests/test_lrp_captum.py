"""npxai.compat.captum against captum.attr.LRP (0.9), in float64."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from captum.attr import LRP as CaptumLRP
from conftest import assert_close

import npxai


class Net(torch.nn.Module):
    """Only layers Captum's LRP supports (it flattens in forward, as it has no rule for Flatten)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 8, 3), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        )  # fmt: skip
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(8 * 3 * 3, 12),
            torch.nn.Tanh(),
            torch.nn.Dropout(),
            torch.nn.Linear(12, 4),
        )
        with torch.no_grad():
            bn = self.features[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


@pytest.mark.filterwarnings("ignore::UserWarning:captum")
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_compat_captum_equals_captum_lrp(backend):
    net = Net().double().eval()
    ours = npxai.Sequential(OrderedDict(
        features=npxai.from_torch(net.features), flatten=npxai.layers.Flatten(),
        classifier=npxai.from_torch(net.classifier),
    ))  # fmt: skip
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16))
    target = [0, 2, 3]
    expected = CaptumLRP(net).attribute(torch.tensor(x), target=target).detach().numpy()
    e = npxai.compat.captum.lrp(ours, backend=backend)(x, target)
    assert_close(e.attribution, expected, np.float64)
