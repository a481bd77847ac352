"""MultiheadAttention and the ViT against torch (forward, VJP; hypothesis-drawn heads, lengths and
dims; float64 to 1e-10, float32 to 1e-5; numpy and numba backends), their errors, and LRP through
them: AttnLRP and CP-LRP against LXT's efficient mode reproduced in torch, conservation, the
matrix-product and softmax rules against their formulas."""

import numpy as np
import pytest
import torch
from conftest import TORCH_DTYPE, assert_close, relative_error
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.vision_transformer import VisionTransformer

import npxai
from npxai import layers as L
from npxai.composites import CPLRP, AttnLRP
from npxai.errors import LayerInputError
from npxai.models import vit
from npxai.module import Record
from npxai.rules import AttnLRPRule, CPLRPRule, ProductRule, SoftmaxRule

HOST = ("numpy", "numba")
FEW = settings(max_examples=15, deadline=None)


class SelfAttention(torch.nn.Module):
    """torch's MultiheadAttention as a function of one input, with a fixed mask."""

    def __init__(self, mha: torch.nn.MultiheadAttention, mask=None, causal=False):
        super().__init__()
        self.mha, self.mask, self.causal = mha, mask, causal

    def forward(self, x):
        length = x.shape[1 if self.mha.batch_first else 0]
        mask = self.mask
        if self.causal:
            mask = torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=x.dtype)
        return self.mha(x, x, x, need_weights=False, attn_mask=mask)[0]


def torch_mha(embed_dim, num_heads, bias, batch_first, dtype, seed):
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=batch_first)
    mha = mha.to(TORCH_DTYPE[dtype]).eval()
    if bias:
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    return mha


def draw_mask(data, kind, length, dtype):
    """``(npxai's attn_mask, torch's attn_mask)`` of ``kind``."""
    if kind == "bool":
        mask = np.array(data.draw(st.lists(st.booleans(), min_size=length * length,
                                           max_size=length * length))).reshape(length, length)  # fmt: skip
        mask[np.arange(length), np.arange(length)] = False  # each query sees itself
        return mask, torch.tensor(mask)
    if kind == "float":
        seed = data.draw(st.integers(0, 2**31))
        mask = np.random.default_rng(seed).standard_normal((length, length)).astype(dtype)
        return mask, torch.tensor(mask)
    return None, None


@FEW
@given(
    data=st.data(),
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 4),
    length=st.integers(1, 6),
    batch=st.integers(1, 3),
    batch_first=st.booleans(),
    bias=st.booleans(),
    mask_kind=st.sampled_from(["none", "causal", "bool", "float"]),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_multihead_attention_matches_torch(
    data, heads, head_dim, length, batch, batch_first, bias, mask_kind, dtype
):
    e = heads * head_dim
    theirs = torch_mha(e, heads, bias, batch_first, dtype, data.draw(st.integers(0, 99)))
    mask, torch_mask = draw_mask(data, mask_kind, length, dtype)
    ours = L.MultiheadAttention(e, heads, bias=bias, batch_first=batch_first, attn_mask=mask,
                                is_causal=mask_kind == "causal")  # fmt: skip
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    module = SelfAttention(theirs, torch_mask, mask_kind == "causal")
    shape = (batch, length, e) if batch_first else (length, batch, e)
    x = np.random.default_rng(data.draw(st.integers(0, 2**31))).standard_normal(shape)
    x = x.astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(g))
    for backend in HOST:
        y = ours(x, backend=backend)
        assert y.dtype == x.dtype and y.shape == shape
        assert_close(y, yt.detach().numpy(), dtype)
        assert_close(ours.vjp(x, y, g, backend=backend), xt.grad.numpy(), dtype)


def test_multihead_attention_keys_are_torchs():
    theirs = torch.nn.MultiheadAttention(6, 2)
    ours = L.MultiheadAttention(6, 2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(L.MultiheadAttention(6, 2, bias=False).state_dict()) == [
        "in_proj_weight",
        "out_proj.weight",
    ]


def test_multihead_attention_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(3\)"):
        L.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="kdim=4 is not supported"):
        L.MultiheadAttention(8, 2, kdim=4)
    with pytest.raises(ValueError, match="add_bias_kv=True is not supported"):
        L.MultiheadAttention(8, 2, add_bias_kv=True)
    with pytest.raises(ValueError, match=r"attn_mask must be a boolean or float array of shape"):
        L.MultiheadAttention(8, 2, attn_mask=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="attn_mask row 1 masks every key"):
        L.MultiheadAttention(8, 2, attn_mask=np.array([[False, True], [True, True]]))
    with pytest.raises(ValueError, match="attn_mask or is_causal=True, not both"):
        L.MultiheadAttention(8, 2, attn_mask=np.zeros((3, 3)), is_causal=True)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        L.MultiheadAttention(8, 2, dropout=1.0)
    with pytest.raises(npxai.BackendError, match="MultiheadAttention does not run on the cuda"):
        L.MultiheadAttention(8, 2).forward(np.zeros((1, 2, 8)), "cuda")


def test_multihead_attention_input_errors_name_the_layer():
    model = npxai.Sequential(L.MultiheadAttention(8, 2, batch_first=True,
                                                  attn_mask=np.zeros((3, 3))))  # fmt: skip
    with pytest.raises(LayerInputError, match=r"layer '0'.*attn_mask has shape \(3, 3\), but the "
                       r"input has 4 tokens: expected \(4, 4\)"):  # fmt: skip
        model(np.zeros((1, 4, 8)))
    with pytest.raises(LayerInputError, match=r"layer '0'.*expected input of shape \(N, S, E\) "
                       r"with E = 8, got shape \(1, 3, 6\)"):  # fmt: skip
        model(np.zeros((1, 3, 6)))


# --- the ViT ---------------------------------------------------------------------------------

SMALL = dict(image_size=8, patch_size=4, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=12,
             num_classes=5)  # fmt: skip


def torch_vit(seed=0, biases=True, scale=0.5, **config):
    """A torchvision ViT in float64 with random weights (normal, ``scale``), or without biases
    (every bias, the class token and the positional embedding zero)."""
    torch.manual_seed(seed)
    model = VisionTransformer(**{**SMALL, **config}).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, scale)
            if not biases and (name.endswith("bias") or name in ("class_token",
                                                                 "encoder.pos_embedding")):  # fmt: skip
                p.zero_()
    return model


def test_vit_loads_torchvision_state_dicts_strictly_and_matches_torch():
    theirs = torch_vit(representation_size=6)
    ours = vit(**SMALL, representation_size=6)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt[:, 3].sum().backward()
    for backend in HOST:
        assert_close(ours(x, backend=backend), yt.detach().numpy(), np.float64)
        grad = npxai.Gradient(ours, backend=backend).attribute(x, target=3)
        assert_close(grad, xt.grad.numpy(), np.float64)
    converted = npxai.from_torch(theirs)
    assert type(converted).__name__ == "VisionTransformer"
    assert_close(converted(x), yt.detach().numpy(), np.float64)
    assert list(vit_b_16_keys()) == list(npxai.models.vit_b_16().state_dict())


def vit_b_16_keys():
    """torchvision's vit_b_16 keys, from the meta device (no weights made)."""
    from torchvision.models import vit_b_16

    with torch.device("meta"):
        return vit_b_16().state_dict().keys()


def test_vit_refuses_bad_configurations_and_images_by_name():
    with pytest.raises(ValueError, match=r"image_size \(10\) must be a multiple of patch_size"):
        vit(image_size=10, patch_size=4)
    with pytest.raises(ValueError, match=r"hidden_dim \(10\) must be divisible by num_heads"):
        vit(image_size=8, patch_size=4, hidden_dim=10, num_heads=4)
    model = vit(**SMALL)
    with pytest.raises(LayerInputError, match=r"expected input of shape \(N, 3, 8, 8\) \(its "
                       r"positional embedding holds 5 tokens.*got shape \(1, 3, 12, 12\)"):  # fmt: skip
        model(np.zeros((1, 3, 12, 12)))


# --- AttnLRP and CP-LRP against LXT's efficient mode ----------------------------------------


class _DivideGradient(torch.autograd.Function):
    """LXT's ``divide_gradient``: identity forward, gradient divided by ``factor``."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.factor, None


class _IdentityRule(torch.autograd.Function):
    """LXT's ``identity_rule_implicit``: gradient ``fn(x) / (x + 1e-10)`` times the incoming."""

    @staticmethod
    def forward(ctx, fn, x):
        y = fn(x)
        ctx.save_for_backward(y / (x + 1e-10))
        return y

    @staticmethod
    def backward(ctx, grad):
        return None, ctx.saved_tensors[0] * grad


def _layer_norm_detached(self, x):
    """LXT's ``layer_norm_forward``: the standard deviation detached."""
    mean = x.mean(dim=-1, keepdim=True)
    std = (((x - mean) ** 2).mean(dim=-1, keepdim=True) + self.eps).sqrt()
    return (x - mean) / std.detach() * self.weight + self.bias


def lxt_relevance(model, x, target, variant):
    """Input x gradient of the target logit with LXT 2.1's efficient-mode rules patched into the
    torch model's instances (as its ``lxt.efficient.patches`` defines them, reproduced with
    ``detach`` and custom autograd functions; the package itself, which imports transformers,
    is not installed): the identity rule on GELU, LayerNorm's std detached, and in attention
    ``q``, ``k`` divided by 4 and ``v`` by 2 (AttnLRP, LXT's ``wrap_attention_forward``) or
    ``q``, ``k`` detached (CP-LRP, LXT's ``cp_multi_head_attention_forward`` of its torchvision
    ViT map). Dense layers and convolutions keep their gradient: LRP-0."""
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.forward = _layer_norm_detached.__get__(module)
        elif isinstance(module, torch.nn.GELU):
            module.forward = (lambda f: lambda t: _IdentityRule.apply(f, t))(module.forward)
        elif isinstance(module, torch.nn.MultiheadAttention):
            forward = torch.nn.MultiheadAttention.forward.__get__(module)
            if variant == "cp":
                module.forward = lambda q, k, v, f=forward, **kw: f(q.detach(), k.detach(), v, **kw)
            else:
                module.forward = lambda q, k, v, f=forward, **kw: f(
                    _DivideGradient.apply(q, 4), _DivideGradient.apply(k, 4),
                    _DivideGradient.apply(v, 2), **kw,
                )  # fmt: skip
    xt = torch.tensor(x, requires_grad=True)
    logits = model(xt)
    logits[:, target].sum().backward()
    return (xt * xt.grad).detach().numpy(), logits[:, target].detach().numpy()


@pytest.mark.parametrize("variant", ["attnlrp", "cp"])
@pytest.mark.parametrize("config", [{}, dict(num_heads=4, num_layers=1, patch_size=2)])
def test_attnlrp_and_cplrp_equal_lxts_efficient_mode(variant, config):
    theirs = torch_vit(seed=3, **config)
    ours = npxai.from_torch(theirs)
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8))
    expected, _ = lxt_relevance(theirs, x, 2, variant)
    composite = (AttnLRP if variant == "attnlrp" else CPLRP)(1e-14)
    for backend in HOST:
        analyzer = npxai.LRP(ours, composite, output_relevance="logit", backend=backend)
        relevance = analyzer.attribute(x, target=2)
        assert relative_error(relevance, expected) < 1e-7


CONFIGS = st.fixed_dictionaries({
    "num_layers": st.integers(1, 2), "num_heads": st.integers(1, 2),
    "head_dim": st.integers(2, 3), "patch_size": st.sampled_from([2, 4]),
    "seed": st.integers(0, 999),
})  # fmt: skip


def bias_free_vit(config):
    hidden = config["num_heads"] * config["head_dim"]
    theirs = torch_vit(seed=config["seed"], biases=False, num_layers=config["num_layers"],
                       num_heads=config["num_heads"], hidden_dim=hidden, mlp_dim=2 * hidden,
                       patch_size=config["patch_size"])  # fmt: skip
    return npxai.from_torch(theirs)


@FEW
@given(config=CONFIGS)
def test_cplrp_conserves_on_a_bias_free_vit(config):
    """Without biases (nor class token, nor positional embedding) every step of CP-LRP is a
    z-rule of a linear map or the LN-rule: the input relevance sums to the explained logit."""
    model = bias_free_vit(config)
    x = np.random.default_rng(config["seed"]).standard_normal((2, 3, 8, 8))
    analyzer = npxai.LRP(model, CPLRP(0.0), output_relevance="logit", record=True)
    explanation = analyzer(x, target=1)
    sums = explanation.attribution.sum(axis=(1, 2, 3))
    assert relative_error(sums, model(x)[:, 1]) < 1e-7
    assert_layers_conserve(explanation.extras["conservation"], skip=())


@FEW
@given(config=CONFIGS)
def test_attnlrp_conserves_on_a_bias_free_vit_but_in_the_softmax(config):
    """AttnLRP on a bias-free ViT: every layer but self-attention conserves; inside attention the
    softmax rule absorbs its Taylor bias (SoftmaxRule), so the attention layers alone lose
    relevance, and the input's sum is the logit less exactly what they lost."""
    model = bias_free_vit(config)
    x = np.random.default_rng(config["seed"]).standard_normal((2, 3, 8, 8))
    analyzer = npxai.LRP(model, AttnLRP(0.0), output_relevance="logit", record=True)
    explanation = analyzer(x, target=1)
    table = explanation.extras["conservation"]
    attention = [row for row in table if row[1] == "MultiheadAttention"]
    assert len(attention) == config["num_layers"]
    assert_layers_conserve(table, skip="MultiheadAttention")
    lost = sum(out - into for _, _, _, out, into in attention)
    assert (np.abs(lost) > 1e-6 * np.abs(table[0][3])).all()  # the softmax rule does not conserve
    sums = explanation.attribution.sum(axis=(1, 2, 3))
    assert relative_error(sums + lost, model(x)[:, 1]) < 1e-7


def assert_layers_conserve(table, skip):
    """Every row of the conservation table but those of layer type ``skip``: in = out."""
    for key, kind, _, out, into in table:
        if kind != skip:
            assert relative_error(into, out, np.abs(out).max() + 1e-3) < 1e-7, key


# --- the rules on their own layers -----------------------------------------------------------


@FEW
@given(data=st.data(), n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4),
       split=st.sampled_from(["uniform", "signal"]), gate=st.integers(0, 1))  # fmt: skip
def test_matrix_product_rule_is_its_formula_and_conserves(data, n, k, m, split, gate):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    a, b = rng.standard_normal((2, n, k)), rng.standard_normal((2, k, m))
    y = a @ b
    r = rng.standard_normal(y.shape)
    rule = ProductRule(split, gate, epsilon=0.0)
    for backend in HOST:
        r_a, r_b = npxai.lrp.step(Record("mm", L.MatMul(), (a, b), y), rule, r, backend)
        terms = np.einsum("xik,xkj->xikj", a, b) * (r / y)[:, :, None, :]  # each a_ik b_kj's share
        full_a, full_b = terms.sum(axis=3), terms.sum(axis=1)
        if split == "uniform":
            expected = (full_a / 2, full_b / 2)
        else:
            expected = (full_a * 0, full_b) if gate == 0 else (full_a, full_b * 0)
        assert_close(r_a, expected[0], np.float64, np.abs(terms).max())
        assert_close(r_b, expected[1], np.float64, np.abs(terms).max())
        total = r_a.sum() + r_b.sum()
        assert abs(total - r.sum()) <= 1e-10 * np.abs(terms).sum()


@FEW
@given(data=st.data(), rows=st.integers(1, 3), length=st.integers(2, 6))
def test_softmax_rule_is_its_formula_and_absorbs_its_taylor_bias(data, rows, length):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.standard_normal((rows, length))
    x[0, -1] = -np.inf  # a masked score
    layer = L.Softmax(1)
    for backend in HOST:
        y = layer.forward(x, backend)
        r = rng.standard_normal(y.shape)
        r_in = npxai.lrp.step(Record("sm", layer, x, y), SoftmaxRule(), r, backend)
        finite = np.where(np.isfinite(x), x, 0)
        by_hand = finite * (r - y * r.sum(axis=1, keepdims=True))
        assert_close(r_in, by_hand, np.float64)
        assert r_in[0, -1] == 0
        absorbed = r.sum(1) - r_in.sum(1)
        taylor_bias = (finite * y).sum(1) * r.sum(1) + r.sum(1) - (finite * r).sum(1)
        assert_close(absorbed, taylor_bias, np.float64)


def test_attention_rules_print_and_refuse_other_layers():
    assert repr(AttnLRPRule(1e-9)) == "AttnLRPRule(epsilon=1e-09)"
    text = repr(AttnLRP())
    assert "ByType(MultiheadAttention): AttnLRPRule(epsilon=1e-06)" in text
    assert "ByType(Softmax): SoftmaxRule()" in text
    assert "ByType(MultiheadAttention): CPLRPRule(epsilon=1e-06)" in repr(CPLRP())
    assert not CPLRPRule.supports(L.Linear(2, 2))
    with pytest.raises(npxai.LRPCompatibilityError, match="CPLRPRule.*cannot run on layer"):
        npxai.LRP(npxai.Sequential(L.Linear(2, 2)),
                  npxai.composites.Composite((npxai.composites.ByType(L.Linear), CPLRPRule())))  # fmt: skip
    with pytest.raises(ValueError, match="AttnLRPRule: epsilon"):
        AttnLRPRule(-1.0)


def test_crp_on_a_transformer_neuron_of_an_mlp_layer():
    """CRP with a neuron of an MLP layer as the concept (``channel_axis=-1``: the same unit of
    every token). On a bias-free ViT under CP-LRP every step below the layer conserves, so each
    concept's input relevance sums to its relevance at the layer; the concepts together carry
    all of the layer's relevance."""
    config = {"num_layers": 2, "num_heads": 2, "head_dim": 2, "patch_size": 4, "seed": 5}
    model = bias_free_vit(config)
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 8))
    layer = "encoder.layers.encoder_layer_1.mlp.0"
    lrp = npxai.LRP(model, CPLRP(0.0), output_relevance="logit")
    crp = npxai.CRP(lrp, layer, npxai.IndexedFeatures(*range(8)), channel_axis=-1)
    explanation = crp(x, target=1)
    assert explanation.attribution.shape == (2, 8, 3, 8, 8)
    per_concept = explanation.attribution.sum(axis=(2, 3, 4))
    assert relative_error(per_concept, explanation.extras["concept_relevance"]) < 1e-7
    top = npxai.CRP(lrp, layer, npxai.TopNFeatures(2), channel_axis=-1)(x, target=1)
    best = np.argsort(-explanation.extras["layer_relevance"], axis=1, kind="stable")[:, :2]
    assert (top.extras["channels"] == best).all()
    with pytest.raises(ValueError, match="CRP: channel_axis must be 1 or -1, got 2"):
        npxai.CRP(lrp, layer, npxai.TopNFeatures(2), channel_axis=2)


@pytest.mark.parametrize("backend", HOST)
def test_broadcast_sum_and_class_token_concat_match_torch(backend):
    """``Add`` of tokens and a positional embedding ``(1, S, E)``, ``Concat`` of a class token
    ``(1, 1, E)`` repeated along the batch: forward and VJP as torch's ``+`` and ``cat`` of
    ``expand``; LRP gives the broadcast input its share per sample."""
    rng = np.random.default_rng(3)
    x, pos, token = (
        rng.standard_normal((3, 4, 2)),
        rng.standard_normal((1, 5, 2)),
        rng.standard_normal((1, 1, 2)),
    )
    xt, post, tokent = (torch.tensor(a, requires_grad=True) for a in (x, pos, token))
    joined = torch.cat([tokent.expand(3, -1, -1), xt], dim=1)
    summed = joined + post
    g = rng.standard_normal(summed.shape)
    summed.backward(torch.tensor(g))
    cat, add = L.Concat(1), L.Add()
    ours_joined = cat.forward((token, x), backend)
    ours_summed = add.forward((ours_joined, pos), backend)
    assert_close(ours_summed, summed.detach().numpy(), np.float64)
    g_joined, g_pos = add.vjp((ours_joined, pos), ours_summed, g, backend)
    g_token, g_x = cat.vjp((token, x), ours_joined, g_joined, backend)
    for ours, theirs in ((g_pos, post), (g_token, tokent), (g_x, xt)):
        assert_close(ours, theirs.grad.numpy(), np.float64)
    r_joined, r_pos = npxai.lrp.step(Record("add", add, (ours_joined, pos), ours_summed),
                                     npxai.rules.NormRule(0.0), g, backend)  # fmt: skip
    assert r_pos.shape == (3, 5, 2)  # per sample: the constant's share, absorbed
    assert_close(r_joined + r_pos, g, np.float64)
    r_token, r_x = npxai.lrp.step(Record("cat", cat, (token, x), ours_joined),
                                  npxai.rules.GradientRule(), r_joined, backend)  # fmt: skip
    assert r_token.shape == (3, 1, 2) and (r_token == r_joined[:, :1]).all()
    with pytest.raises(LayerInputError, match=r"the branch output \(3, 4, 2\) and the shortcut "
                       r"output \(1, 5, 2\) must have one shape \(or broadcast to one: a positional "
                       r"embedding of \(1, S, E\) takes S tokens, no more\)"):  # fmt: skip
        npxai.Graph({"add": (L.Add(), ["input", "pos"])}, constants={"pos": pos})(x)
