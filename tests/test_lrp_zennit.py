"""npxai's LRP presets against Zennit's (0.5.1, the newest on PyPI), in float64, on a VGG-style
network with and without batch norm (Zennit folding it with SequentialMergeBatchNorm, npxai with
canonize).

Zennit's canonizer leaves each folded batch norm in place as ``x / sqrt(1 + eps)`` (it sets the
statistics to 0 and 1 but keeps ``eps``), so its canonized model is not the original: measured
here, the outputs move by 9e-6 relative and the relevances by 2e-4 with torch's default
``eps=1e-5``. The batch norms here have ``eps=0`` so that both foldings are exact and the rules
themselves are compared."""

import numpy as np
import pytest
import torch
from conftest import assert_close
from zennit import composites as Z
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm

import npxai
from npxai import composites as C
from npxai import rules as R

PAIRS = [
    (Z.EpsilonPlusFlat, C.EpsilonPlusFlat),
    (Z.EpsilonPlus, C.EpsilonPlus),
    (Z.EpsilonAlpha2Beta1, C.EpsilonAlpha2Beta1),
    (Z.EpsilonAlpha2Beta1Flat, C.EpsilonAlpha2Beta1Flat),
    (Z.ExcitationBackprop, C.ExcitationBackprop),
    (
        lambda canonizers=None: Z.EpsilonGammaBox(-3.0, 3.0, canonizers=canonizers),
        # Zennit's gamma is the sign-aware one
        lambda: C.Composite(
            (C.ByType(npxai.layers.Linear), R.EpsilonRule()),
            (C.ByType(npxai.layers.Conv2d), R.GeneralizedGammaRule()),
            (C.FirstOfType(npxai.layers.Conv2d), R.ZBoxRule(-3.0, 3.0)),
        ),
    ),
]


def vgg_style(batch_norm: bool, eps: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    norm = (
        (lambda c: torch.nn.BatchNorm2d(c, eps=eps))
        if batch_norm
        else (lambda c: torch.nn.Identity())
    )
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), norm(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 8, 3, padding=1), norm(8), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5),
    ).double()  # fmt: skip
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.eval()


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch-norm"])
@pytest.mark.parametrize(
    "pair", PAIRS, ids=[p[1].__name__ for p in PAIRS[:-1]] + ["EpsilonGammaBox"]
)
def test_presets_equal_zennits(pair, batch_norm):
    theirs_composite, ours_composite = pair
    net = vgg_style(batch_norm)
    ours = npxai.canonize(npxai.from_torch(net))
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16))
    canonizers = [SequentialMergeBatchNorm()] if batch_norm else None
    with Gradient(model=net, composite=theirs_composite(canonizers=canonizers)) as attributor:
        _, expected = attributor(
            torch.tensor(x, requires_grad=True), torch.eye(5, dtype=torch.float64)[[1, 3]]
        )
    e = npxai.LRP(ours, ours_composite())(x, target=[1, 3])
    assert_close(e.attribution, expected.detach().numpy(), np.float64)


def test_zennits_batch_norm_folding_changes_the_model_slightly():
    """The measurement behind the module docstring: with torch's default eps=1e-5 Zennit's folded
    model moves the outputs by about 9e-6 and the EpsilonPlus relevances by about 2e-4 (relative
    to their largest value), while npxai's canonize moves the outputs by rounding only."""
    net = vgg_style(True, eps=1e-5)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16))
    original = net(torch.tensor(x)).detach().numpy()
    composite = Z.EpsilonPlus(canonizers=[SequentialMergeBatchNorm()])
    with composite.context(net) as folded:
        theirs = folded(torch.tensor(x)).detach().numpy()
    with Gradient(
        model=net, composite=Z.EpsilonPlus(canonizers=[SequentialMergeBatchNorm()])
    ) as attributor:
        _, relevance = attributor(
            torch.tensor(x, requires_grad=True), torch.eye(5, dtype=torch.float64)[[1, 3]]
        )
    ours = npxai.canonize(npxai.from_torch(net))
    output_shift = np.abs(theirs - original).max() / np.abs(original).max()
    e = npxai.LRP(ours, C.EpsilonPlus())(x, target=[1, 3])
    expected = relevance.detach().numpy()
    relevance_shift = np.abs(e.attribution - expected).max() / np.abs(expected).max()
    print(f"Zennit's folding: outputs {output_shift:.1e}, relevances {relevance_shift:.1e}")
    assert 5e-6 < output_shift < 2e-5 and 1e-4 < relevance_shift < 4e-4
    assert_close(ours(x), original, np.float64)
