"""LRP against Zennit (0.5.1, the newest on PyPI), in float64.

``npxai.compat.zennit`` against Zennit's presets with Zennit's canonizers, number by number: on a
VGG-style network with batch norm (torch's default ``eps=1e-5``, ``VGGCanonizer``) and on
torchvision ResNets with randomised batch-norm statistics (``ResNetCanonizer``; BasicBlock with
every preset on both backends, Bottleneck with two). ``python -m pytest -s
tests/test_lrp_zennit.py`` prints the largest relative error per network.

npxai's own presets, with ``npxai.canonize``, against Zennit's rules: Zennit's canonizer leaves
each folded batch norm in place as ``x / sqrt(1 + eps)`` (it sets the statistics to 0 and 1 but
keeps ``eps``), so its canonized model is not the original; with ``eps=0`` both foldings are exact
and the rules themselves are compared. The shift at torch's default ``eps`` is measured (and
printed) by ``test_zennits_batch_norm_folding_changes_the_model_slightly``."""

import functools

import numpy as np
import pytest
import torch
from conftest import assert_close, relative_error
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from zennit import composites as Z
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

import npxai
from npxai import composites as C
from npxai import rules as R
from npxai.compat import zennit as ZC

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

#: Zennit's presets (given their canonizers) and npxai.compat.zennit's, by name.
PRESETS = {
    "EpsilonGammaBox": (
        lambda c: Z.EpsilonGammaBox(-3.0, 3.0, canonizers=c),
        lambda: ZC.EpsilonGammaBox(-3.0, 3.0),
    ),
    "EpsilonPlus": (lambda c: Z.EpsilonPlus(canonizers=c), ZC.EpsilonPlus),
    "EpsilonPlusFlat": (lambda c: Z.EpsilonPlusFlat(canonizers=c), ZC.EpsilonPlusFlat),
    "EpsilonAlpha2Beta1": (lambda c: Z.EpsilonAlpha2Beta1(canonizers=c), ZC.EpsilonAlpha2Beta1),
    "EpsilonAlpha2Beta1Flat": (
        lambda c: Z.EpsilonAlpha2Beta1Flat(canonizers=c),
        ZC.EpsilonAlpha2Beta1Flat,
    ),
    "ExcitationBackprop": (lambda c: Z.ExcitationBackprop(canonizers=c), ZC.ExcitationBackprop),
}

#: Non-default parameters, passed by keyword to both libraries' presets.
PARAMETERS = {
    "EpsilonGammaBox": {"epsilon": 1e-2, "gamma": 0.5, "stabilizer": 1e-3},
    "EpsilonPlus": {"epsilon": 1e-2, "stabilizer": 1e-3},
    "EpsilonPlusFlat": {"epsilon": 1e-2, "stabilizer": 1e-3},
    "EpsilonAlpha2Beta1": {"epsilon": 1e-2, "stabilizer": 1e-3},
    "EpsilonAlpha2Beta1Flat": {"epsilon": 1e-2, "stabilizer": 1e-3},
    "ExcitationBackprop": {"stabilizer": 1e-3},
}

#: The largest relative error per network, printed after the module's tests (``-s``).
LARGEST: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def print_the_largest_errors():
    yield
    for network, error in LARGEST.items():
        print(f"\ncompat.zennit against Zennit, {network}: largest relative error {error:.1e}")


def randomise_batch_norms(net: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net


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
    return randomise_batch_norms(net).eval()


def resnet(block: str) -> torch.nn.Module:
    """torchvision's ResNet with one block per stage, float64, random batch-norm statistics."""
    torch.manual_seed(0)
    kind = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
    return randomise_batch_norms(ResNet(kind, [1, 1, 1, 1], num_classes=5).double()).eval()


NETWORKS = {
    "vgg": (lambda: vgg_style(True, eps=1e-5), VGGCanonizer, (2, 3, 16, 16)),
    "resnet-basic": (lambda: resnet("basic"), ResNetCanonizer, (2, 3, 32, 32)),
    "resnet-bottleneck": (lambda: resnet("bottleneck"), ResNetCanonizer, (1, 3, 32, 32)),
}
TARGET = [1, 3]


def zennit_relevance(net, composite, x: np.ndarray, target, classes: int = 5) -> np.ndarray:
    """Zennit's relevance at the input, from the one-hot output relevance at ``target``."""
    with Gradient(model=net, composite=composite) as attributor:
        _, relevance = attributor(
            torch.tensor(x, requires_grad=True), torch.eye(classes, dtype=torch.float64)[target]
        )
    return relevance.detach().numpy()


@functools.cache
def expected(network: str, preset: str) -> tuple[np.ndarray, np.ndarray]:
    """The input and Zennit's relevance, computed once for both backends."""
    make, canonizer, shape = NETWORKS[network]
    x = np.random.default_rng(0).standard_normal(shape)
    composite = PRESETS[preset][0]([canonizer()])
    return x, zennit_relevance(make(), composite, x, TARGET[: shape[0]])


def check(network: str, preset: str, backend: str) -> None:
    x, relevance = expected(network, preset)
    model = npxai.from_torch(NETWORKS[network][0]())
    e = ZC.lrp(model, PRESETS[preset][1](), backend=backend)(x, target=TARGET[: len(x)])
    error = relative_error(e.attribution, relevance)
    LARGEST[network] = max(LARGEST.get(network, 0.0), error)
    assert_close(e.attribution, relevance, np.float64)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_compat_zennit_equals_zennit_on_vgg_with_batch_norm(preset, backend):
    check("vgg", preset, backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_compat_zennit_equals_zennit_on_resnet(preset, backend):
    check("resnet-basic", preset, backend)


@pytest.mark.parametrize("preset", ["EpsilonGammaBox", "ExcitationBackprop"])
def test_compat_zennit_equals_zennit_on_bottleneck_resnet(preset):
    check("resnet-bottleneck", preset, "numba")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_compat_zennit_presets_take_zennits_parameters(preset):
    net = vgg_style(True, eps=1e-5)
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16))
    theirs, ours = {
        "EpsilonGammaBox": (
            lambda **k: Z.EpsilonGammaBox(-2.0, 2.5, **k),
            lambda **k: ZC.EpsilonGammaBox(-2.0, 2.5, **k),
        ),
    }.get(preset, (getattr(Z, preset), getattr(ZC, preset)))
    parameters = PARAMETERS[preset]
    relevance = zennit_relevance(
        net, theirs(**parameters, canonizers=[SequentialMergeBatchNorm()]), x, TARGET
    )
    e = ZC.lrp(npxai.from_torch(net), ours(**parameters))(x, target=TARGET)
    assert_close(e.attribution, relevance, np.float64)
    default = ZC.lrp(npxai.from_torch(net), ours())(x, target=TARGET)
    assert relative_error(default.attribution, relevance) > 1e-6  # the parameters matter here


@pytest.mark.parametrize("network", list(NETWORKS))
def test_canonize_computes_zennits_canonized_model(network):
    """compat.zennit.merge_batch_norms's model computes what Zennit's canonized one does (not the
    original's outputs), and leaves the model it is given unchanged."""
    make, canonizer, shape = NETWORKS[network]
    net = make()
    x = np.random.default_rng(2).standard_normal(shape)
    original = net(torch.tensor(x)).detach().numpy()
    with Z.EpsilonPlus(canonizers=[canonizer()]).context(net) as folded:
        theirs = folded(torch.tensor(x)).detach().numpy()
    model = npxai.from_torch(net)
    ours = ZC.merge_batch_norms(model)
    assert_close(ours(x), theirs, np.float64)
    assert relative_error(ours(x), original) > 1e-7
    assert_close(model(x), original, np.float64)
    norms = [m for m in ours.modules() if isinstance(m, npxai.layers.BatchNorm2d)]
    assert norms and all(np.all(m.running_var == 1) and m.eps == 1e-5 for m in norms)


def test_canonize_folds_in_leaf_order_across_containers():
    """Zennit pairs a batch norm with the leaf before it, whatever container holds either;
    npxai.canonize folds within one Sequential only, so here it leaves the batch norm."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3)),
        torch.nn.Sequential(torch.nn.BatchNorm2d(4), torch.nn.ReLU()),
        torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3),
    ).double()  # fmt: skip
    net = randomise_batch_norms(net).eval()
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8))
    relevance = zennit_relevance(
        net, Z.EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()]), x, [0, 2], classes=3
    )
    model = npxai.from_torch(net)
    assert isinstance(npxai.canonize(model)[1][0], npxai.layers.BatchNorm2d)
    assert np.all(ZC.merge_batch_norms(model)[1][0].running_mean == 0)
    e = ZC.lrp(model, ZC.EpsilonPlusFlat())(x, target=[0, 2])
    assert_close(e.attribution, relevance, np.float64)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch-norm"])
@pytest.mark.parametrize(
    "pair", PAIRS, ids=[p[1].__name__ for p in PAIRS[:-1]] + ["EpsilonGammaBox"]
)
def test_npxai_presets_equal_zennits_rules(pair, batch_norm):
    """npxai's own presets and npxai.canonize, where both foldings are exact (eps=0)."""
    theirs_composite, ours_composite = pair
    net = vgg_style(batch_norm)
    ours = npxai.canonize(npxai.from_torch(net))
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16))
    canonizers = [SequentialMergeBatchNorm()] if batch_norm else None
    relevance = zennit_relevance(net, theirs_composite(canonizers=canonizers), x, TARGET)
    e = npxai.LRP(ours, ours_composite())(x, target=TARGET)
    assert_close(e.attribution, relevance, np.float64)


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
