"""npxai.from_onnx on transformers exported from torch: TorchScript's exporter (opsets 14 and 17)
and the dynamo one write attention out as layers (MatMul, Softmax, Transpose, Reshape, Mul by the
scale, Add of the mask), moving the batch axis and merging it with the heads or the tokens
between them (npxai.onnx.layout). Forward passes and input gradients against torch; LRP
(AttnLRP, CP-LRP) on the imported graphs against npxai's fused MultiheadAttention on the same
weights (npxai.models.vit through from_torch, or the same encoder built from npxai's layers).
torch is an oracle only."""

import io
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torchvision.models.vision_transformer import VisionTransformer

import npxai
from npxai import layers as L
from npxai.attention import MultiheadAttention
from npxai.errors import LoadError
from npxai.lrp.composites import ByType, Keys
from npxai.lrp.rules import ProductRule, SoftmaxRule
from npxai.onnx import from_onnx
from npxai.onnx.layout import Layout, regroup

onnx = pytest.importorskip("onnx")

EXPORTERS = ["torchscript-14", "torchscript-17", "dynamo"]
E, HEADS, FF, TOKENS, CLASSES = 8, 2, 16, 5, 3  # the text encoders' sizes


def export(model: torch.nn.Module, x: torch.Tensor, exporter: str, dynamic: bool = True):
    """TorchScript's exporter at the opset named, the batch axis free (``dynamic``) or the
    example's; the dynamo one, the example's batch fixed in the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            return torch.onnx.export(model, (x,), dynamo=True, verbose=False).model_proto
        f = io.BytesIO()
        torch.onnx.export(model, (x,), f, dynamo=False, input_names=["x"],
                          opset_version=int(exporter.split("-")[1]),
                          dynamic_axes={"x": {0: "batch"}} if dynamic else None)  # fmt: skip
        return onnx.load_from_string(f.getvalue())


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def small_vit() -> VisionTransformer:
    """torchvision's ViT, small, random weights; torchvision starts the head, the class token
    and the biases at 0: drawn here too."""
    torch.manual_seed(0)
    model = VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2,
                              hidden_dim=8, mlp_dim=16, num_classes=5).eval()  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln" in name or name.startswith(("heads", "class")):
                p.normal_(0, 0.5)
    return model


def images(n: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, dtype=dtype, generator=torch.Generator().manual_seed(1))


def kinds(graph: npxai.Graph) -> Counter:
    return Counter(type(m).__name__ for _, m, _ in graph.nodes())


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_vit_imports_as_layers_and_equals_torch(exporter):
    """The dynamo export fixes the batch at 2; the graph runs at 3 all the same."""
    model = small_vit()
    x = images(3)
    graph = from_onnx(export(model, x[:2], exporter))
    found = kinds(graph)
    assert found["MatMul"] == 4 and found["Softmax"] == 2 and found["LayerNorm"] == 5, found
    with torch.no_grad():
        assert relative(graph(x.numpy()), model(x).numpy()) < 1e-5
    model = model.double()
    xd = x.double().requires_grad_()
    graph64 = from_onnx(export(model, xd.detach()[:2], exporter))
    out = model(xd)
    out[:, 3].sum().backward()
    assert relative(graph64(xd.detach().numpy()), out.detach().numpy()) < 1e-10
    gradient = npxai.Gradient(graph64)(xd.detach().numpy(), target=3).attribution
    assert relative(gradient, xd.grad.numpy()) < 1e-10


@pytest.mark.parametrize("exporter", ["torchscript-17", "dynamo"])
def test_a_vit_exported_for_a_fixed_batch_of_one_runs_at_any_batch(exporter):
    """A batch of 1 fixed by the file is in no axis the file can name: it floats until an axis
    of size 1 takes it (npxai.onnx.layout); the graph is the file's function of each sample."""
    model = small_vit().double()
    x = images(3, torch.float64)
    proto = export(model, x[:1], exporter, dynamic=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    with torch.no_grad():
        assert relative(from_onnx(proto)(x.numpy()), model(x).numpy()) < 1e-10


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_attnlrp_on_an_imported_vit_equals_the_fused_attention(exporter):
    """AttnLRP on the layers (SoftmaxRule on Softmax, the uniform ProductRule on MatMul, the scale
    a Mul by a constant, which passes relevance on) equals AttnLRPRule in npxai.models.vit's
    MultiheadAttention: TorchScript's exporter scales q and k by the scale's square root each,
    the fused layer q by the scale, and the uniform rule's shares are the same."""
    model = small_vit().double()
    x = images(2, torch.float64).numpy()
    fused = npxai.from_torch(model)
    assert any(isinstance(m, MultiheadAttention) for _, m in fused.named_modules())
    graph = from_onnx(export(model, torch.tensor(x), exporter))
    for epsilon in (1e-12, 1e-2):
        composite = npxai.composites.AttnLRP(epsilon)
        expected = npxai.LRP(fused, composite, output_relevance="logit")(x, target=[1, 3])
        e = npxai.LRP(graph, composite, output_relevance="logit")(x, target=[1, 3])
        assert relative(e.attribution, expected.attribution) < 1e-8, epsilon


def values_products(graph: npxai.Graph) -> list[str]:
    """The keys of an imported attention's ``A @ v``: the MatMuls of a Softmax's output."""
    return [key for key, m, inputs in graph.nodes()
            if isinstance(m, L.MatMul) and isinstance(graph[inputs[0]], L.Softmax)]  # fmt: skip


def test_cplrp_on_an_imported_vit_with_the_values_rule_by_key_equals_the_fused_attention():
    """CP-LRP written out: ``A @ v`` under ``ProductRule("signal", gate=0)`` (the attention
    weights held constant) by key, so that nothing reaches the scores."""
    model = small_vit().double()
    x = images(2, torch.float64).numpy()
    graph = from_onnx(export(model, torch.tensor(x), "torchscript-17"))
    keys = values_products(graph)
    assert len(keys) == 2
    composite = npxai.composites.CPLRP(1e-12) + [
        (Keys(*keys), ProductRule("signal", gate=0, epsilon=1e-12)),
        (ByType(L.Softmax), SoftmaxRule()),
    ]
    expected = npxai.LRP(npxai.from_torch(model), npxai.composites.CPLRP(1e-12),
                         output_relevance="logit")(x, target=[0, 4])  # fmt: skip
    e = npxai.LRP(graph, composite, output_relevance="logit")(x, target=[0, 4])
    assert relative(e.attribution, expected.attribution) < 1e-8


def causal_mask() -> torch.Tensor:
    return torch.triu(torch.full((TOKENS, TOKENS), float("-inf")), 1)


def masks(kind: str | None) -> torch.Tensor | None:
    if kind is None:
        return None
    if kind == "causal":
        return causal_mask()
    return torch.randn(TOKENS, TOKENS, generator=torch.Generator().manual_seed(2))


class Attention(torch.nn.Module):
    """torch's MultiheadAttention (batch first) over the tokens, a linear head on the first."""

    def __init__(self, mask: torch.Tensor | None, need_weights: bool):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(E, HEADS, batch_first=True)
        self.head = torch.nn.Linear(E, CLASSES)
        self.mask, self.need_weights = mask, need_weights

    def forward(self, x):
        y = self.attention(x, x, x, attn_mask=self.mask, need_weights=self.need_weights)[0]
        return self.head(y[:, 0])


def tokens(n: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, TOKENS, E, dtype=dtype, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "need_weights, mask, exporter",
    [(True, None, "torchscript-14"), (True, "causal", "torchscript-17"), (True, "float", "dynamo"),
     (False, None, "torchscript-17"), (False, "causal", "dynamo")],
)  # fmt: skip
def test_torchs_multihead_attention_as_exported_equals_torch_and_the_fused_layer(
    need_weights, mask, exporter
):
    """need_weights=True (torch's default) exports q k^T as a batched product of (N * H, S, d),
    the batch merged with the heads; False, scaled_dot_product_attention on (N, H, S, d). (With a
    float64 mask and need_weights=False TorchScript's exporter refuses: 'Unsupported type for
    attn_mask: 7'.)"""
    torch.manual_seed(0)
    mask_ = masks(mask)
    model = Attention(None if mask_ is None else mask_.double(), need_weights).double().eval()
    with torch.no_grad():
        model.attention.in_proj_bias.normal_()
        model.attention.out_proj.bias.normal_()
    x = tokens(3).requires_grad_()
    graph = from_onnx(export(model, x.detach(), exporter))
    out = model(x)
    out[:, 1].sum().backward()
    assert relative(graph(x.detach().numpy()), out.detach().numpy()) < 1e-10
    gradient = npxai.Gradient(graph)(x.detach().numpy(), target=1).attribution
    assert relative(gradient, x.grad.numpy()) < 1e-10
    fused = npxai.Graph({
        "attention": (MultiheadAttention(E, HEADS, batch_first=True,
                                         attn_mask=None if mask is None else model.mask.numpy()),
                      ["input"]),
        "first": (L.Select(1, 0), ["attention"]),
        "head": (L.Linear(E, CLASSES), ["first"]),
    })  # fmt: skip
    fused.load_state_dict({k: v.detach().numpy() for k, v in model.state_dict().items()})
    composite = npxai.composites.AttnLRP(1e-12)
    with np.errstate(invalid="ignore"):  # the mask's own share of -inf * 0, which is dropped
        e = npxai.LRP(graph, composite, output_relevance="logit")(x.detach().numpy(), target=1)
    expected = npxai.LRP(fused, composite, output_relevance="logit")(x.detach().numpy(), target=1)
    assert np.isfinite(e.attribution).all()
    assert relative(e.attribution, expected.attribution) < 1e-8


class Encoder(torch.nn.Module):
    """A small BERT-like text encoder: token embeddings given as input (N, S, E), a learned
    positional embedding added, two of torch's TransformerEncoderLayer, a linear classifier on
    the first token."""

    def __init__(self, norm_first: bool, masked: bool = False, bias: bool = True):
        super().__init__()
        self.pos = torch.nn.Parameter(
            torch.randn(1, TOKENS, E) if bias else torch.zeros(1, TOKENS, E)
        )
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=norm_first, bias=bias)
            for _ in range(2)
        )  # fmt: skip
        self.classifier = torch.nn.Linear(E, CLASSES, bias=bias)
        self.mask = causal_mask() if masked else None  # float32 (not a buffer): see above

    def forward(self, x):
        h = x + self.pos
        for layer in self.layers:
            h = layer(h, src_mask=self.mask)
        return self.classifier(h[:, 0])


def encoder(norm_first: bool, masked: bool, bias: bool = True) -> Encoder:
    torch.manual_seed(0)
    model = Encoder(norm_first, masked, bias).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".norm" in name:
                p.normal_(0, 0.5)
    return model


def fused_encoder(model: Encoder) -> npxai.Graph:
    """``model`` built from npxai's layers, each attention one fused MultiheadAttention; torch's
    keys, its weights."""
    mask = None if model.mask is None else model.mask.numpy()
    bias = model.classifier.bias is not None
    nodes, last = {"embedded": (L.Add(), ["input", "pos"])}, "embedded"
    for i, layer in enumerate(model.layers):
        eps = layer.norm1.eps
        attention = MultiheadAttention(E, HEADS, bias=bias, batch_first=True, attn_mask=mask)
        mlp = {"linear1": (L.Linear(E, FF, bias), []), "activation": (L.GELU(), ["linear1"]),
               "linear2": (L.Linear(FF, E, bias), ["activation"])}  # fmt: skip
        if layer.norm_first:
            block = {"norm1": (L.LayerNorm(E, eps, bias=bias), ["input"]),
                     "self_attn": (attention, ["norm1"]),
                     "attention_sum": (L.Add(), ["input", "self_attn"]),
                     "norm2": (L.LayerNorm(E, eps, bias=bias), ["attention_sum"])}  # fmt: skip
            mlp["linear1"] = (mlp["linear1"][0], ["norm2"])
            block |= mlp | {"mlp_sum": (L.Add(), ["attention_sum", "linear2"])}
        else:
            block = {"self_attn": (attention, ["input"]),
                     "attention_sum": (L.Add(), ["input", "self_attn"]),
                     "norm1": (L.LayerNorm(E, eps, bias=bias), ["attention_sum"])}  # fmt: skip
            mlp["linear1"] = (mlp["linear1"][0], ["norm1"])
            block |= mlp | {"mlp_sum": (L.Add(), ["norm1", "linear2"]),
                            "norm2": (L.LayerNorm(E, eps, bias=bias), ["mlp_sum"])}  # fmt: skip
        nodes[f"layers.{i}"] = (npxai.Graph(block), [last])
        last = f"layers.{i}"
    nodes["first"] = (L.Select(1, 0), [last])
    nodes["classifier"] = (L.Linear(E, CLASSES, bias), ["first"])
    graph = npxai.Graph(nodes, constants={"pos": np.zeros((1, TOKENS, E))})
    graph.load_state_dict({k: v.detach().numpy() for k, v in model.state_dict().items()})
    return graph


@pytest.mark.parametrize(
    "norm_first, masked, exporter",
    [(False, False, "torchscript-14"), (True, True, "torchscript-17"), (False, True, "dynamo"),
     (True, False, "dynamo")],
)  # fmt: skip
def test_a_bert_like_encoder_equals_torch_and_its_fused_attention(norm_first, masked, exporter):
    """torch's TransformerEncoderLayer in eval mode exports written out, post-norm and pre-norm,
    with a causal mask. (Under torch.no_grad() it takes its fused fast path,
    aten::_transformer_encoder_layer_fwd, which TorchScript's exporter refuses: export with
    autograd on.) In float64 at opset 17 the eps is LayerNormalization's float32 attribute
    (9.99999975e-06, not 1e-5): still within 1e-10."""
    model = encoder(norm_first, masked)
    x = tokens(3, torch.float32)
    graph = from_onnx(export(model, x, exporter))
    with torch.no_grad():
        assert relative(graph(x.numpy()), model(x).numpy()) < 1e-5
    model = model.double()
    xd = x.double().requires_grad_()
    graph = from_onnx(export(model, xd.detach(), exporter))
    assert kinds(graph)["MatMul"] == 4
    out = model(xd)
    out[:, 2].sum().backward()
    assert relative(graph(xd.detach().numpy()), out.detach().numpy()) < 1e-10
    gradient = npxai.Gradient(graph)(xd.detach().numpy(), target=2).attribution
    assert relative(gradient, xd.grad.numpy()) < 1e-10
    fused = fused_encoder(model)
    assert relative(fused(xd.detach().numpy()), out.detach().numpy()) < 1e-10
    composite = npxai.composites.AttnLRP(1e-12)
    with np.errstate(invalid="ignore"):  # the mask's own share of -inf * 0, which is dropped
        e = npxai.LRP(graph, composite, output_relevance="logit")(xd.detach().numpy(), target=2)
    expected = npxai.LRP(fused, composite, output_relevance="logit")(xd.detach().numpy(), target=2)
    assert np.isfinite(e.attribution).all()
    assert relative(e.attribution, expected.attribution) < 1e-8


def test_from_torch_exports_an_encoder_written_out_even_under_no_grad():
    """Without autograd (and with frozen weights) torch's encoder layers take their fused fast
    path, which the exporter refuses; from_torch exports with autograd on. The causal mask is a
    graph constant of -inf entries: allow_nonfinite=True lets it through the state-dict check."""
    model = encoder(norm_first=False, masked=True).double().requires_grad_(False)
    x = tokens(3)
    with torch.no_grad():
        graph = npxai.from_torch(model, input_shape=(TOKENS, E), allow_nonfinite=True)
        assert relative(graph(x.numpy()), model(x).numpy()) < 1e-10


def test_attnlrp_on_an_imported_encoder_without_biases_loses_only_the_softmaxs_terms():
    """Without biases (and a zero positional embedding) every layer but Softmax conserves under
    AttnLRP with a tiny epsilon; the input's relevance is the logit less what the softmax rule
    absorbs (its bias term: SoftmaxRule's docstring)."""
    model = encoder(norm_first=True, masked=True, bias=False).double()
    x = tokens(2)
    graph = from_onnx(export(model, x, "torchscript-17"))
    with np.errstate(invalid="ignore"):
        e = npxai.LRP(graph, npxai.composites.AttnLRP(1e-12), output_relevance="logit",
                      record=True)(x.numpy(), target=1)  # fmt: skip
    logit = graph(x.numpy())[:, 1]
    inputs = {key: values for key, _, values in graph.nodes()}
    absorbed = np.zeros(2)
    for key, kind, _, out, _ in e.extras["conservation"]:
        parts = e.extras["relevance"][key]
        parts = parts if isinstance(parts, tuple) else (parts,)
        into = sum(r.reshape(len(r), -1).sum(axis=1)  # the activations' shares, not a constant's
                   for r, value in zip(parts, inputs[key], strict=True)
                   if value not in graph.constants())  # fmt: skip
        assert np.isfinite(into).all(), key
        if kind == "Softmax":
            absorbed += out - into
        else:
            np.testing.assert_allclose(into, out, rtol=1e-8, atol=1e-12, err_msg=key)
    assert np.abs(absorbed).min() > 1e-6 * np.abs(logit).max()
    np.testing.assert_allclose(e.attribution.sum(axis=(1, 2)), logit - absorbed, rtol=1e-8)


def test_the_batch_axis_moved_and_merged_with_the_heads_is_followed():
    """torch's MultiheadAttention's reshapes, ``(N, S, E) -> (S, N, E) -> (S, N * H, d) -> (N * H,
    S, d) -> (N, H, S, d)`` and back through ``(S * N, E)``: each layout holds the ONNX value, the
    batch never split."""
    n, h, d = 3, 2, 4
    x = np.random.default_rng(0).standard_normal((n, TOKENS, h * d))
    t = x.transpose(1, 0, 2)
    layout, held = Layout.identity(3).transpose([1, 0, 2]), x
    for target, perm in (((TOKENS, n * h, d), [1, 0, 2]), ((n, h, TOKENS, d), [2, 0, 1, 3]),
                         ((TOKENS * n, h * d), None), ((TOKENS, n, h * d), [1, 0, 2])):  # fmt: skip
        shape, layout = regroup(layout, held.shape, target, None)
        held, t = held.reshape(shape), t.reshape(target)
        np.testing.assert_array_equal(layout.example(held), t)
        if perm is not None:
            layout, t = layout.transpose(perm), t.transpose(perm)
            np.testing.assert_array_equal(layout.example(held), t)
        perm_c, shape_c, canonical = layout.canonical(held.shape)
        np.testing.assert_array_equal(canonical.example(held.transpose(perm_c).reshape(shape_c)), t)
    assert layout.batch_first(held.shape) and layout.canonical(held.shape)[2].is_identity
    with pytest.raises(ValueError, match="not the input's merged or split"):
        regroup(Layout.identity(3), (1, 5, 8), (1, 4, 10), 0)


def one_node(nodes, initializers=(), shape=("N", 2, 3)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
        [numpy_helper.from_array(np.asarray(a), name) for name, a in initializers],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_constants_added_and_subtracted_are_graph_constants():
    """A constant that is no bias (the input's positional embedding) is added by Add, subtracted
    as its negative; one repeated along a fixed batch is taken once."""
    c = np.arange(6.0).reshape(1, 2, 3)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    graph = from_onnx(one_node([helper.make_node("Sub", ["x", "c"], ["s"], "sub"),
                                helper.make_node("Add", ["d", "s"], ["y"], "add")],
                               [("c", c), ("d", 2 * c)]))  # fmt: skip
    assert kinds(graph) == {"Add": 2}
    np.testing.assert_allclose(graph(x), x + c)
    fixed = from_onnx(one_node([helper.make_node("Add", ["x", "c"], ["y"], "add")],
                               [("c", np.repeat(c, 2, axis=0))], shape=(2, 2, 3)))  # fmt: skip
    assert fixed.state_dict()["c"].shape == (1, 2, 3)
    np.testing.assert_allclose(fixed(x), x + c)
    varies = one_node([helper.make_node("Add", ["x", "c"], ["y"], "add")],
                      [("c", np.stack([c[0], -c[0]]))], shape=(2, 2, 3))  # fmt: skip
    with pytest.raises(LoadError, match="node 'add' \\(Add\\): the constant of shape \\(2, 2, 3\\) "
                       "differs along the batch axis"):  # fmt: skip
        from_onnx(varies)


def test_what_cannot_keep_the_samples_apart_names_the_node_and_op():
    swap = helper.make_node("Transpose", ["x"], ["t"], "swap", perm=[1, 0, 2])
    moved = "node 'swap' \\(Transpose\\): perm \\[1, 0, 2\\] moves the batch axis 0; "
    with pytest.raises(LoadError, match=moved + "the output 'y' needs the batch alone on axis 0"):
        from_onnx(one_node([swap, helper.make_node("Relu", ["t"], ["y"], "relu")]))
    mean = helper.make_node("ReduceMean", ["t"], ["y"], "mean", axes=[2])
    with pytest.raises(LoadError, match=moved + "node 'mean' \\(ReduceMean\\) needs the batch"):
        from_onnx(one_node([swap, mean]))
    softmax = helper.make_node("Softmax", ["t"], ["y"], "softmax", axis=1)
    with pytest.raises(LoadError, match="'softmax' \\(Softmax\\): a softmax over the batch axis"):
        from_onnx(one_node([swap, softmax]))
    expand = helper.make_node("Expand", ["x", "shape"], ["y"], "expand")
    with pytest.raises(LoadError, match="'expand' \\(Expand\\): expanding an activation of shape "
                       "\\(1, 2, 3\\) by \\(1, 4, 2, 3\\) is not supported"):  # fmt: skip
        from_onnx(one_node([expand], [("shape", np.array([1, 4, 2, 3]))]))
    reshape = helper.make_node("Reshape", ["t", "shape"], ["y"], "reshape")
    with pytest.raises(LoadError, match="'reshape' \\(Reshape\\): reshaping \\(2, 1, 3\\) to "
                       "\\(2, 3\\): the batch \\(1 in the example\\) could join"):  # fmt: skip
        from_onnx(one_node([swap, reshape], [("shape", np.array([2, 3]))]))
