"""npxai.from_onnx on torchvision's CNNs, exported by torch.onnx.export (TorchScript's exporter
and the dynamo one): logits against onnxruntime and torch, input gradients against torch
autograd in float64 (the model exported in float64), LRP on an imported ResNet-18 against Zennit.
torch, onnxruntime and Zennit are oracles only."""

import io
import warnings

import numpy as np
import pytest
import torch
import torchvision
from test_lrp_zennit import PRESETS, randomise_batch_norms, zennit_relevance

import npxai
from npxai.onnx import from_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

#: torchvision constructor -> input side (small, for the suite's time; every model's pools fit)
MODELS = {
    "resnet18": 32,
    "resnet50": 32,
    "densenet121": 32,
    "mobilenet_v2": 32,
    "mobilenet_v3_small": 32,
    "efficientnet_b0": 32,
    "squeezenet1_1": 48,
    "googlenet": 32,
    "convnext_tiny": 32,
}


class ExactHardsigmoid(torch.nn.Module):
    """``relu6(x + 3) / 6``: torch's own Hardsigmoid backward multiplies by the float32 ``1/6``
    even in float64 (README, Conventions), which would hide a 1e-8 error; this is the oracle."""

    def forward(self, x):
        return torch.nn.functional.relu6(x + 3) / 6


def torchvision_model(name: str, seed: int = 0) -> torch.nn.Module:
    """Random weights (``torch.manual_seed``), batch-norm statistics and affine parameters drawn
    away from their initial values, evaluation mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None).eval()
    randomise_batch_norms(model)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "layer_scale"):  # ConvNeXt's is 1e-6: make the blocks count
                module.layer_scale.uniform_(0.5, 1.5)
    return model


def exact_hardsigmoid(model: torch.nn.Module) -> torch.nn.Module:
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, torch.nn.Hardsigmoid):
                setattr(module, name, ExactHardsigmoid())
    return model


def export(model: torch.nn.Module, x: torch.Tensor, dynamo: bool = False) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(
                model, (x,), dynamo=True, verbose=False
            ).model_proto.SerializeToString()
        f = io.BytesIO()
        torch.onnx.export(model, (x,), f, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})  # fmt: skip
        return f.getvalue()


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def check_model(name: str, dynamo: bool, backend: str = "numba") -> None:
    model = torchvision_model(name)
    side = MODELS[name]
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    data = export(model, x, dynamo)
    graph = from_onnx(data)
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    by_ort = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    logits = graph(x.numpy(), backend=backend)
    assert relative(logits, by_ort) < 1e-4, name
    assert relative(logits, expected) < 1e-4, name

    model = model.double()
    xd = x.double().requires_grad_()
    if dynamo:
        graph64 = from_onnx(export(model, xd.detach(), dynamo))
    else:  # through from_torch, which exports with TorchScript's exporter where its walk ends
        graph64 = npxai.from_torch(model, input_shape=(3, side, side))
    exact_hardsigmoid(model)(xd)[:, 3].sum().backward()
    gradient = npxai.Gradient(graph64, backend=backend)(xd.detach().numpy(), target=3)
    assert relative(gradient.attribution, xd.grad.numpy()) < 1e-10, name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchvision_models_exported_by_torchscript_and_through_from_torch(name):
    check_model(name, dynamo=False)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "convnext_tiny"])
def test_torchvision_models_exported_by_dynamo_equal_torch_and_onnxruntime(name):
    check_model(name, dynamo=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", sorted(set(MODELS) - {"resnet18", "mobilenet_v3_small", "convnext_tiny"})
)
def test_the_other_models_exported_by_dynamo(name):
    check_model(name, dynamo=True)


def test_keys_are_torchs_where_a_node_reads_its_own_weight():
    model = torchvision_model("resnet18")
    graph = from_onnx(export(model, torch.zeros(1, 3, 32, 32), dynamo=True))
    keys = set(graph.state_dict())
    # batch norms are folded into the convolutions by the exporter: their keys are gone
    assert {"conv1.weight", "conv1.bias", "layer1.0.conv1.weight", "fc.weight", "fc.bias"} <= keys
    np.testing.assert_array_equal(graph.state_dict()["fc.weight"], model.fc.weight.detach().numpy())


@pytest.mark.parametrize("preset", ["EpsilonPlusFlat", "EpsilonGammaBox", "EpsilonAlpha2Beta1"])
def test_lrp_on_an_imported_resnet18_equals_zennit_with_its_resnet_canonizer(preset):
    """Zennit's ResNetCanonizer on the torch model against npxai.compat.zennit's preset on the
    ONNX graph (the exporter folded the batch norms; their eps is 0 here, where Zennit's merged
    batch norm is exact: with eps > 0 it computes x / sqrt(1 + eps), see compat.zennit)."""
    from zennit.torchvision import ResNetCanonizer

    from npxai.compat import zennit as ZC

    model = torchvision_model("resnet18").double()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 0.0
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    graph = from_onnx(export(model, torch.tensor(x)))
    expected = zennit_relevance(model, PRESETS[preset][0]([ResNetCanonizer()]), x, [1, 3], 1000)
    e = ZC.lrp(graph, PRESETS[preset][1](), backend="numba")(x, target=[1, 3])
    assert relative(e.attribution, expected) < 1e-10


@pytest.mark.parametrize(
    "opset, dynamo",
    [(13, False), (14, False), (16, False), (17, False), (18, True), (21, True)],
)
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "convnext_tiny"])
def test_opsets_13_to_21(name, opset, dynamo):
    """Older opsets write Hardswish as x * HardSigmoid(x) (before 14) and LayerNorm as its
    ReduceMean/Sub/Pow/Sqrt/Div pattern (before 17); the import recognises or runs their parts."""
    model = torchvision_model(name).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            proto = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset).model_proto
        else:
            f = io.BytesIO()
            torch.onnx.export(model, (x,), f, dynamo=False, opset_version=opset)
            proto = onnx.load_from_string(f.getvalue())
    assert proto.opset_import[0].version == opset
    graph = from_onnx(proto)
    if name == "convnext_tiny":
        assert sum(isinstance(m, npxai.layers.LayerNorm) for _, m, _ in graph.nodes()) == 23
    xd = x.clone().requires_grad_()
    out = exact_hardsigmoid(model)(xd)
    out[:, 3].sum().backward()
    np.testing.assert_allclose(graph(x.numpy(), backend="numba"), out.detach().numpy(),
                               rtol=1e-10, atol=1e-10 * np.abs(out.detach().numpy()).max())  # fmt: skip
    gradient = npxai.Gradient(graph, backend="numba")(x.numpy(), target=3).attribution
    assert relative(gradient, xd.grad.numpy()) < 1e-10


def test_from_torch_walks_the_new_torch_layers():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.ZeroPad2d((1, 0, 2, 1)), torch.nn.Conv2d(2, 3, 3), torch.nn.Hardtanh(-0.5, 0.5),
        torch.nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.ConstantPad2d(1, 0.3),
        torch.nn.Flatten(1), torch.nn.LayerNorm(288),
    ).double()  # fmt: skip
    model = npxai.from_torch(net)
    assert isinstance(model, npxai.Sequential)  # walked, not exported: torch's keys
    assert list(model.state_dict()) == ["1.weight", "1.bias", "6.weight", "6.bias"]
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    out = net(x)
    out[:, 1].sum().backward()
    assert relative(model(x.detach().numpy()), out.detach().numpy()) < 1e-12
    gradient = npxai.gradient(model, x.detach().numpy(), 1, backend="numba")
    assert relative(gradient, x.grad.numpy()) < 1e-10


class Tokens(torch.nn.Module):
    """Slices and selections of activations, as transformers use them: a class token, a window."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(4, 6)
        self.head = torch.nn.Linear(6 + 6 * 2, 3)

    def forward(self, x):  # x: (N, 5 tokens, 4)
        h = torch.relu(self.embed(x))
        first = h[:, 0]  # Gather of one index
        window = h[:, 1:5:2].flatten(1)  # Slice with a step
        return self.head(torch.cat([first, window], 1))


@pytest.mark.parametrize("dynamo", [False, True])
def test_slices_and_selections_of_activations_import(dynamo):
    torch.manual_seed(0)
    net = Tokens().double().eval()
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    graph = from_onnx(export(net, x.detach(), dynamo))
    kinds = {type(m).__name__ for _, m, _ in graph.nodes()}
    assert {"Select", "Slice"} <= kinds, kinds
    out = net(x)
    out[:, 2].sum().backward()
    assert relative(graph(x.detach().numpy()), out.detach().numpy()) < 1e-12
    gradient = npxai.gradient(graph, x.detach().numpy(), 2, backend="numba")
    assert relative(gradient, x.grad.numpy()) < 1e-10
