"""npxai.Graph: a DAG of layers with fan-out, sums and concatenation. Forward and gradient
against the same network written in torch (autograd), on both CPU backends and hypothesis-drawn
sizes; LRP through it (LRP-0 equals InputTimesGradient on a bias-free ReLU graph, relevance
conserved node by node, a chain as a graph equals the chain), CRP and GradCAM on a graph,
canonization, and the errors that name what is wrong."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import npxai
from npxai import composites as C
from npxai import layers as L
from npxai import rules as R


class TorchNet(torch.nn.Module):
    """A residual sum, a skip by concatenation, a value read by three nodes."""

    def __init__(self, bias: bool = True):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 3, 3, padding=1, bias=bias)
        self.conv2 = torch.nn.Conv2d(3, 3, 3, padding=1, bias=bias)
        self.conv3 = torch.nn.Conv2d(2, 3, 1, bias=bias)
        self.fc = torch.nn.Linear(8, 4, bias=bias)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        s = torch.relu(self.conv2(a)) + self.conv3(x) + a
        cat = torch.cat([s, x], 1)  # 3 + 2 channels
        pooled = torch.nn.functional.adaptive_avg_pool2d(cat, 1).flatten(1)  # 5
        return self.fc(torch.cat([pooled, pooled[:, :3]], 1))  # 8: pooled read twice


def graph(bias: bool = True) -> npxai.Graph:
    """``TorchNet`` as a graph (the last cat's slice written as a 1x1 map is left out: the second
    input is a Linear that keeps the first three features)."""
    keep = L.Linear(5, 3, bias=False)
    keep.weight = np.eye(3, 5, dtype=np.float32)
    return npxai.Graph({
        "conv1": (L.Conv2d(2, 3, 3, padding=1, bias=bias), ["input"]),
        "relu1": (L.ReLU(), ["conv1"]),
        "conv2": (L.Conv2d(3, 3, 3, padding=1, bias=bias), ["relu1"]),
        "relu2": (L.ReLU(), ["conv2"]),
        "conv3": (L.Conv2d(2, 3, 1, bias=bias), ["input"]),
        "add": (L.Add(), ["relu2", "conv3", "relu1"]),
        "cat": (L.Concat(1), ["add", "input"]),
        "pool": (L.AdaptiveAvgPool2d(1), ["cat"]),
        "flat": (L.Flatten(), ["pool"]),
        "keep": (keep, ["flat"]),
        "cat2": (L.Concat(1), ["flat", "keep"]),
        "fc": (L.Linear(8, 4, bias=bias), ["cat2"]),
    })  # fmt: skip


def pair(seed: int, bias: bool = True) -> tuple[npxai.Graph, TorchNet]:
    torch.manual_seed(seed)
    net = TorchNet(bias).double()
    model = graph(bias)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    state["keep.weight"] = model.state_dict()["keep.weight"]
    model.load_state_dict(state)
    return model, net


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 3), size=st.integers(3, 7), seed=st.integers(0, 100),
       backend=st.sampled_from(["numpy", "numba"]))  # fmt: skip
def test_forward_and_gradient_match_torch(n, size, seed, backend):
    model, net = pair(seed)
    x = np.random.default_rng(seed).standard_normal((n, 2, size, size))
    xt = torch.tensor(x, requires_grad=True)
    out = net(xt)
    np.testing.assert_allclose(
        model(x, backend=backend), out.detach().numpy(), rtol=1e-10, atol=1e-12
    )
    target = np.arange(n) % 4
    out[torch.arange(n), torch.tensor(target)].sum().backward()
    ours = npxai.gradient(model, x, target, backend=backend)
    np.testing.assert_allclose(ours, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def zero_everywhere() -> C.Composite:
    return C.Composite((C.ByType(L.Add, L.AdaptiveAvgPool2d), R.ZeroRule()), name="LRP-0")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lrp0_is_input_times_gradient_and_conserves_on_a_bias_free_relu_graph(backend):
    model, _ = pair(3, bias=False)
    x = np.abs(np.random.default_rng(3).standard_normal((2, 2, 5, 5)))
    lrp0 = npxai.LRP(model, zero_everywhere(), "logit", record=True, backend=backend)
    e = lrp0(x, target=[1, 2])
    grad = npxai.gradient(model, x, [1, 2], backend=backend)
    np.testing.assert_allclose(e.attribution, x * grad, rtol=1e-8, atol=1e-12)
    for key, _, _, out, into in e.extras["conservation"]:  # every node passes what it got
        np.testing.assert_allclose(into, out, rtol=1e-8, atol=1e-12, err_msg=key)
    # what reaches the input is the output relevance: the logit (the net has no bias)
    logits = model(x)[[0, 1], [1, 2]]
    np.testing.assert_allclose(e.attribution.reshape(2, -1).sum(1), logits, rtol=1e-8)


def test_a_chain_as_a_graph_explains_as_the_chain():
    chain = npxai.models.vgg11(num_classes=3)
    names = [k for k, m in chain.named_modules() if isinstance(m, npxai.Layer)]
    modules = dict(chain.named_modules())
    as_graph = npxai.Graph({key: (modules[key], [before])
                            for key, before in zip(names, ["input", *names[:-1]], strict=True)})  # fmt: skip
    assert as_graph.state_dict().keys() == chain.state_dict().keys()
    x = np.random.default_rng(0).random((2, 3, 32, 32))
    for composite in (C.EpsilonPlusFlat(), C.EpsilonAlpha2Beta1()):
        expected = npxai.LRP(chain, composite)(x, target=[0, 2]).attribution
        np.testing.assert_array_equal(
            npxai.LRP(as_graph, composite)(x, [0, 2]).attribution, expected
        )


def test_crp_concepts_add_up_and_gradcam_runs_on_a_graph():
    model, _ = pair(5)
    x = np.random.default_rng(5).standard_normal((2, 2, 5, 5))
    lrp = npxai.LRP(model, C.EpsilonPlus())
    plain = lrp(x, target=[0, 3]).attribution
    crp = npxai.CRP(lrp, "cat", npxai.IndexedFeatures(range(5)))(x, target=[0, 3])
    np.testing.assert_allclose(crp.attribution.sum(axis=1), plain, rtol=1e-8, atol=1e-12)
    cam = npxai.GradCAM(model, "add")(x, target=[0, 3])
    assert cam.attribution.shape == (2, 1, 5, 5) and cam.extras["layer"] == "add"
    assert npxai.GradCAM(model)(x).extras["layer"] == "cat"  # the last one with 5x5 maps


def test_canonize_folds_a_batch_norm_that_only_reads_a_convolution():
    norm = L.BatchNorm2d(3)
    rng = np.random.default_rng(0)
    norm.running_mean, norm.running_var = rng.standard_normal(3), rng.random(3) + 0.5
    model = npxai.Graph({
        "conv": (L.Conv2d(2, 3, 3), ["input"]),
        "bn": (norm, ["conv"]),
        "relu": (L.ReLU(), ["bn"]),
        "bn_after_sum": (L.BatchNorm2d(3), ["relu"]),  # after a ReLU: stays
    })  # fmt: skip
    folded = npxai.canonize(model)
    assert isinstance(folded["bn"], L.Identity) and isinstance(
        folded["bn_after_sum"], L.BatchNorm2d
    )
    x = rng.standard_normal((1, 2, 6, 6))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-10, atol=1e-12)


def test_the_walk_sums_fan_out_and_skips_a_dead_branch():
    model = npxai.Graph({
        "a": (L.Linear(3, 3), ["input"]),
        "dead": (L.Linear(3, 2), ["a"]),  # read by nobody: no signal, no step
        "b": (L.Linear(3, 3), ["a"]),
        "sum": (L.Add(), ["a", "b", "input"]),
    }, output="sum")  # fmt: skip
    x = np.random.default_rng(1).standard_normal((2, 3))
    visited = []

    def step(record, signal):
        visited.append(record.key)
        return record.layer.vjp(record.input, record.output, signal, "numpy")

    trace = model.trace(x, "numpy")
    seed = np.ones((2, 3))
    grad = model.backward(trace, seed, step)
    wa, wb = model["a"].weight, model["b"].weight
    np.testing.assert_allclose(
        grad, seed @ wa + seed @ wb @ wa + seed, rtol=1e-6
    )  # float32 weights
    assert visited == ["sum", "b", "a"]


def test_graph_and_layer_errors_name_what_is_wrong():
    with pytest.raises(
        ValueError,
        match="node 'b' reads 'c', which is neither the input, a constant nor a node before it",
    ):
        npxai.Graph({"b": (L.ReLU(), ["c"]), "c": (L.ReLU(), ["input"])})
    with pytest.raises(ValueError, match="node 'a' reads no input"):
        npxai.Graph({"a": (L.ReLU(), [])})
    with pytest.raises(ValueError, match="node 'a' must be a pair"):
        npxai.Graph({"a": L.ReLU()})
    with pytest.raises(ValueError, match="output 'z' is not a node"):
        npxai.Graph({"a": (L.ReLU(), ["input"])}, output="z")
    with pytest.raises(ValueError, match="node names must be non-empty strings other than"):
        npxai.Graph({"input": (L.ReLU(), ["input"])})
    with pytest.raises(ValueError, match="Concat: dim must be an int, got '1'"):
        L.Concat("1")
    bad = npxai.Graph({"a": (L.Linear(3, 2), ["input"]), "cat": (L.Concat(0), ["a", "input"])})
    with pytest.raises(
        npxai.LayerInputError,
        match=r"layer 'cat'.*input 1 float64 \(2, 3\) and input 0 float64 \(2, 2\)",
    ):
        bad(np.ones((2, 3)))
    add = npxai.Graph({"a": (L.Linear(3, 2), ["input"]), "sum": (L.Add(), ["a", "a", "input"])})
    with pytest.raises(
        npxai.LayerInputError, match=r"layer 'sum'.*input 2 \(2, 3\) and input 0 \(2, 2\)"
    ):
        add(np.ones((2, 3)))
    cat = npxai.Graph({"cat": (L.Concat(1), ["input", "input"])})
    with pytest.raises(npxai.BackendError, match="Concat does not run on the cuda backend"):
        cat(np.ones((1, 2)), backend="cuda")
    np.testing.assert_array_equal(cat(np.ones((1, 2))), np.ones((1, 4)))


def test_a_graph_with_sums_runs_on_the_cuda_backend():
    model, _ = pair(7)
    nodes = {k: (m, i) for k, m, i in model.nodes()
             if k in ("conv1", "relu1", "conv2", "relu2", "conv3", "add")}  # fmt: skip
    nodes.update({"pool": (L.AdaptiveAvgPool2d(1), ["add"]), "flat": (L.Flatten(), ["pool"]),
                  "fc": (L.Linear(3, 2), ["flat"])})  # fmt: skip
    model = npxai.Graph(nodes)
    x = np.random.default_rng(7).standard_normal((1, 2, 3, 3))
    expected = npxai.LRP(model, C.EpsilonPlus(), backend="numpy")(x, target=0).attribution
    ours = npxai.LRP(model, C.EpsilonPlus(), backend="cuda")(x, target=0).attribution
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(ndim=st.integers(1, 4), parts=st.integers(2, 4), data=st.data(),
       dtype=st.sampled_from([np.float32, np.float64]), backend=st.sampled_from(["numpy", "numba"]))  # fmt: skip
def test_concat_and_the_n_ary_add_against_torch(ndim, parts, data, dtype, backend):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim), label="shape")
    dim = data.draw(st.integers(-ndim, ndim - 1), label="dim")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=parts, max_size=parts), label="sizes")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    xs = []
    for size in sizes:
        s = list(shape)
        s[dim] = size
        xs.append(rng.standard_normal(s).astype(dtype))
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    y = torch.cat(ts, dim)
    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(torch.tensor(g))
    cat = L.Concat(dim)
    np.testing.assert_array_equal(cat.forward(tuple(xs), backend), y.detach().numpy())
    for ours, t in zip(cat.vjp(tuple(xs), None, g, backend), ts, strict=True):
        np.testing.assert_array_equal(ours, t.grad.numpy())
    same = tuple(rng.standard_normal(shape).astype(dtype) for _ in range(parts))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(L.Add().forward(same, backend), sum(same), rtol=tol)
    assert len(L.Add().vjp(same, None, g, backend)) == parts


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(),
       dtype=st.sampled_from([np.float32, np.float64]))  # fmt: skip
def test_mul_broadcasts_as_torch(shape, data, dtype):
    gate = [n if data.draw(st.booleans(), label=f"keep {i}") else 1 for i, n in enumerate(shape)]
    gate = gate[data.draw(st.integers(0, len(gate) - 1), label="drop leading") :]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    a, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(gate).astype(dtype)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    y = at * bt
    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(torch.tensor(g))
    mul = L.Mul()
    np.testing.assert_array_equal(mul.forward((a, b), "numpy"), y.detach().numpy())
    tol = 1e-5 if dtype == np.float32 else 1e-12
    da, db = mul.vjp((a, b), None, g, "numpy")
    np.testing.assert_allclose(da, at.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=tol, atol=tol)
    assert da.shape == a.shape and db.shape == b.shape


class TorchSE(torch.nn.Module):
    """A squeeze-and-excitation block, as torchvision's (1x1 convolutions on the pooled map)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.squeeze = torch.nn.Conv2d(4, 4, 1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        f = torch.relu(self.conv(x))
        g = torch.sigmoid(self.squeeze(torch.nn.functional.adaptive_avg_pool2d(f, 1)))
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(f * g, 1).flatten(1))


def se_graph() -> npxai.Graph:
    return npxai.Graph({
        "conv": (L.Conv2d(2, 4, 3, padding=1), ["input"]),
        "relu": (L.ReLU(), ["conv"]),
        "pool": (L.AdaptiveAvgPool2d(1), ["relu"]),
        "squeeze": (L.Conv2d(4, 4, 1), ["pool"]),
        "sigmoid": (L.Sigmoid(), ["squeeze"]),
        "gate": (L.Mul(), ["relu", "sigmoid"]),
        "pool2": (L.AdaptiveAvgPool2d(1), ["gate"]),
        "flat": (L.Flatten(), ["pool2"]),
        "fc": (L.Linear(4, 3), ["flat"]),
    })  # fmt: skip


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_squeeze_and_excitation_graph_against_torch_and_its_product_rule(backend):
    torch.manual_seed(0)
    net = TorchSE().double()
    model = se_graph()
    model.load_state_dict({k: v.numpy() for k, v in net.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    xt = torch.tensor(x, requires_grad=True)
    out = net(xt)
    np.testing.assert_allclose(model(x, backend=backend), out.detach().numpy(), rtol=1e-10)
    out[:, 1].sum().backward()
    grad = npxai.gradient(model, x, 1, backend=backend)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    lrp = npxai.LRP(model, C.EpsilonPlus(), record=True, backend=backend)
    assert isinstance(lrp.rules["gate"], R.ProductRule)
    e = lrp(x, target=1)
    gate = e.extras["relevance"]["gate"]  # (to the signal, to the gate)
    assert not gate[1].any()
    np.testing.assert_allclose(gate[0].reshape(2, -1).sum(1), dict(
        (row[0], row[3]) for row in e.extras["conservation"])["gate"], rtol=1e-12)  # fmt: skip
    uniform = npxai.LRP(model, C.EpsilonPlus() + [(C.ByType(L.Mul), R.ProductRule("uniform"))],
                        record=True, backend=backend)(x, target=1)  # fmt: skip
    signal, gated = uniform.extras["relevance"]["gate"]
    np.testing.assert_allclose(
        signal.reshape(2, -1).sum(1), gated.reshape(2, -1).sum(1), rtol=1e-10
    )
    assert gated.shape == (2, 4, 1, 1)


def test_product_rule_and_mul_errors():
    with pytest.raises(ValueError, match="split must be 'signal' or 'uniform', got 'half'"):
        R.ProductRule("half")
    with pytest.raises(ValueError, match="gate must be 0 or 1"):
        R.ProductRule(gate=2)
    model = se_graph()
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    wrong = npxai.LRP(model, C.EpsilonPlus() + [(C.ByType(L.Mul), R.ProductRule(gate=0))])
    with pytest.raises(
        ValueError,
        match=r"ProductRule on layer 'gate': the signal \(input 1\) has shape \(1, 4, 1, 1\)",
    ):
        wrong(x, target=0)
    mul = npxai.Graph({"a": (L.Linear(3, 2), ["input"]), "m": (L.Mul(), ["a", "input"])})
    with pytest.raises(
        npxai.LayerInputError, match=r"layer 'm'.*inputs \(2, 2\) and \(2, 3\) do not broadcast"
    ):
        mul(np.ones((2, 3)))
    with pytest.raises(
        npxai.LayerInputError, match="inputs float64 and float32 must have one dtype"
    ):
        L.Mul().check_input((np.ones(2), np.ones(2, np.float32)))
    with pytest.raises(npxai.BackendError, match="Mul does not run on the cuda backend"):
        model(x, backend="cuda")


def test_a_graph_constant_scales_like_torch_and_takes_no_signal():
    """``Graph(constants=...)``: a ConvNeXt-style layer scale read by ``Mul``. Its key is its
    name; the gradient equals torch's; under LRP its ProductRule passes the relevance to the
    signal (a diagonal map: LRP-0 conserves it exactly)."""
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 1.5, (3, 1, 1))
    conv = L.Conv2d(2, 3, 3, padding=1, bias=False)
    graph = npxai.Graph(
        {"conv": (conv, ["input"]), "scaled": (L.Mul(), ["conv", "block.layer_scale"]),
         "pool": (L.AdaptiveAvgPool2d(1), ["scaled"]), "flat": (L.Flatten(), ["pool"])},
        constants={"block.layer_scale": scale},
    )  # fmt: skip
    assert set(graph.state_dict()) == {"conv.weight", "block.layer_scale"}
    assert graph.constants() == ["block.layer_scale"]
    x = rng.standard_normal((2, 2, 5, 5))
    xt = torch.tensor(x, requires_grad=True)
    w = torch.tensor(conv.weight, dtype=torch.float64)
    y = torch.nn.functional.conv2d(xt, w, padding=1) * torch.tensor(scale)
    y.mean((2, 3))[:, 1].sum().backward()
    for backend in ("numpy", "numba"):
        np.testing.assert_allclose(graph(x, backend=backend), y.mean((2, 3)).detach().numpy(),
                                   rtol=1e-12)  # fmt: skip
        e = npxai.Gradient(graph, backend=backend)(x, target=1)
        np.testing.assert_allclose(e.attribution, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    lrp = npxai.LRP(graph, zero_everywhere(), record=True)(x, target=1)
    to_signal, to_scale = lrp.extras["relevance"]["scaled"]
    assert not to_scale.any()
    np.testing.assert_allclose(to_signal.sum((1, 2, 3)),
                               lrp.extras["relevance"]["pool"].sum((1, 2, 3)), rtol=1e-10)  # fmt: skip
    with pytest.raises(ValueError, match="constant 'c' must be a floating-point array"):
        npxai.Graph({"m": (L.Mul(), ["input", "c"])}, constants={"c": np.arange(3)})


@st.composite
def dags(draw) -> npxai.Graph:
    """A random bias-free graph on (N, 2, 4, 4) inputs: ReLU convolutions, sums of values with one
    channel count, concatenations and squeeze-and-excitation gates, read from any earlier value;
    then a global pool and a linear map of the last value."""
    channels = {"input": 2}  # of the (N, c, 4, 4) values
    nodes: dict = {}

    def add(name, module, inputs, c, spatial=True):
        nodes[name] = (module, inputs)
        if spatial:
            channels[name] = c
        return name

    for i in range(draw(st.integers(2, 7))):
        values = list(channels)
        kind = draw(st.sampled_from(["conv", "add", "cat", "gate"]))
        v = draw(st.sampled_from(values))
        if kind == "add":
            same = [w for w in values if channels[w] == channels[v]]
            if len(same) > 1:
                others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=2))
                add(f"add{i}", L.Add(), [v, *others], channels[v])
                continue
            kind = "conv"
        if kind == "conv":
            c = draw(st.integers(1, 3))
            add(f"conv{i}", L.Conv2d(channels[v], c, 3, padding=1, bias=False), [v], c)
            add(f"relu{i}", L.ReLU(), [f"conv{i}"], c)
        elif kind == "cat":
            w = draw(st.sampled_from(values))
            add(f"cat{i}", L.Concat(1), [v, w], channels[v] + channels[w])
        else:
            c = channels[v]
            add(f"squeeze{i}", L.AdaptiveAvgPool2d(1), [v], c, spatial=False)
            add(f"excite{i}", L.Conv2d(c, c, 1, bias=False), [f"squeeze{i}"], c, spatial=False)
            add(f"sigmoid{i}", L.Sigmoid(), [f"excite{i}"], c, spatial=False)
            add(f"gate{i}", L.Mul(), [v, f"sigmoid{i}"], c)
    last = list(channels)[-1]
    add("pool", L.AdaptiveAvgPool2d(1), [last], channels[last], spatial=False)
    add("flat", L.Flatten(), ["pool"], channels[last], spatial=False)
    add("fc", L.Linear(channels[last], 3, bias=False), ["flat"], 3, spatial=False)
    graph = npxai.Graph(nodes)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    for _, module, _ in graph.nodes():  # float64 weights from the drawn seed
        if isinstance(module, L.Conv2d | L.Linear):
            module.weight = rng.standard_normal(module.weight.shape)
    return graph


@settings(max_examples=25, deadline=None)
@given(dags(), st.integers(0, 2))
def test_lrp0_conserves_node_by_node_on_drawn_dags(graph, target):
    """LRP-0 on a bias-free graph of ReLU convolutions, sums, concatenations and gates: every
    node passes on what it gets (a gate's sigmoid branch gets none: ProductRule gives the signal
    all), so the input's relevance is the logit; without gates LRP-0 is input times gradient."""
    x = np.abs(np.random.default_rng(0).standard_normal((2, 2, 4, 4)))
    e = npxai.LRP(graph, zero_everywhere(), "logit", record=True, backend="numba")(x, target)
    for key, _, _, out, into in e.extras["conservation"]:
        np.testing.assert_allclose(into, out, rtol=1e-8, atol=1e-10, err_msg=key)
    logits = graph(x)[:, target]
    np.testing.assert_allclose(e.attribution.reshape(2, -1).sum(1), logits, rtol=1e-8,
                               atol=1e-10)  # fmt: skip
    if not any(isinstance(m, L.Mul) for _, m, _ in graph.nodes()):
        grad = npxai.gradient(graph, x, target, backend="numba")
        np.testing.assert_allclose(e.attribution, x * grad, rtol=1e-8, atol=1e-10)
