"""npxai.compat.julia against RelevancePropagation.jl's (v3) formulas, written out here from its
source (src/rules.jl, src/utils.jl, src/lrp.jl, src/composite_presets.jl) on dense matrices in
float64: every rule on a Linear and a Conv2d layer, and every preset layer by layer on a small
network, both backends."""

from collections import OrderedDict

import numpy as np
import pytest
from conftest import assert_close, dense_matrix

import npxai
from npxai import layers as L
from npxai import rules as R
from npxai.compat import julia as J
from npxai.module import Record

# src/rules.jl: LRP_DEFAULT_EPSILON = 1.0f-6, LRP_DEFAULT_STABILIZER = 1.0f-9 (Float32 literals,
# widened to the Float64 input's type by T(eps) in stabilize_denom)
EPS = float(np.float64(np.float32(1.0e-6)))
STAB = float(np.float64(np.float32(1.0e-9)))


def stabilize_denom(d, eps=STAB):
    """src/utils.jl: ``iszero(d) && return T(eps); return d + sign(d) * T(eps)``."""
    return np.where(d == 0, eps, d + np.sign(d) * eps)


def pos(p):
    return np.maximum(p, 0)  # keep_positive


def neg(p):
    return np.minimum(p, 0)  # keep_negative


def relu(z):
    return np.maximum(z, 0)


def generic(a, m, b, r, eps=STAB):
    """The generic ``lrp!``: ``z = layer(a~)``, ``s = R ./ stabilize_denom(z)``, ``R = a~ .* back(s)``;
    the (modified) layer is the matrix ``m`` with bias ``b``, its pullback ``m^T``."""
    return a * (m.T @ (r / stabilize_denom(m @ a + b, eps)))


def zplus(a, m, b, r):
    """ZPlusRule's ``lrp!``: layer+ keeps ``b+``, layer- has no bias."""
    s = r / stabilize_denom(pos(m) @ pos(a) + pos(b) + neg(m) @ neg(a))
    return pos(a) * (pos(m).T @ s) + neg(a) * (neg(m).T @ s)


def alpha_beta(a, m, b, r, alpha=2.0, beta=1.0):
    """AlphaBetaRule's ``lrp!``: alpha layers (W+, b+) on a+ and (W-, no bias) on a-, beta layers
    (W-, b-) on a+ and (W+, no bias) on a-."""
    s_alpha = r / stabilize_denom(pos(m) @ pos(a) + pos(b) + neg(m) @ neg(a))
    s_beta = r / stabilize_denom(pos(m) @ neg(a) + neg(m) @ pos(a) + neg(b))
    return alpha * (pos(a) * (pos(m).T @ s_alpha) + neg(a) * (neg(m).T @ s_alpha)) - beta * (
        pos(a) * (neg(m).T @ s_beta) + neg(a) * (pos(m).T @ s_beta)
    )


def zbox(a, m, b, r, low, high, activation=None):
    """ZBoxRule's ``lrp!``: ``z = layer(a) - layer+(l) - layer-(h)``, each layer with its bias
    (``b``, ``b+``, ``b-``); ``layer`` is the unmodified layer, with its fused activation."""
    lo, hi = np.full_like(a, low), np.full_like(a, high)
    pre = m @ a + b
    out, slope = (pre, 1.0) if activation is None else (relu(pre), (pre > 0) * 1.0)
    s = r / stabilize_denom(out - (pos(m) @ lo + pos(b)) - (neg(m) @ hi + neg(b)))
    return a * (m.T @ (slope * s)) - lo * (pos(m).T @ s) - hi * (neg(m).T @ s)


def generalized_gamma(a, m, b, r, gamma=0.25):
    """GeneralizedGammaRule's ``lrp!``: left layers (up(W), up(b)) on a+ and (down(W), no bias) on
    a-, right layers (down(W), down(b)) on a+ and (up(W), no bias) on a-; masks from layer(a)."""
    up_m, down_m = m + gamma * pos(m), m + gamma * neg(m)
    up_b, down_b = b + gamma * pos(b), b + gamma * neg(b)
    z = m @ a + b
    s_left = np.where(z > 0, r, 0) / stabilize_denom(up_m @ pos(a) + up_b + down_m @ neg(a))
    s_right = np.where(z < 0, r, 0) / stabilize_denom(up_m @ neg(a) + down_m @ pos(a) + down_b)
    return pos(a) * (up_m.T @ s_left + down_m.T @ s_right) + neg(a) * (
        down_m.T @ s_left + up_m.T @ s_right
    )


def bias_vector(layer, out_shape):
    """The bias of every output (a convolution's repeated over its positions)."""
    return np.repeat(layer.bias, int(np.prod(out_shape)) // len(layer.bias))


# (npxai.compat.julia's rule, Julia's formula on (matrix, bias, input, relevance, ones-mask, kind))
RULES = {
    "ZeroRule": (J.ZeroRule(), lambda m, b, a, r, k, kind: generic(a, m, b, r)),
    "EpsilonRule": (J.EpsilonRule(), lambda m, b, a, r, k, kind: generic(a, m, b, r, EPS)),
    "EpsilonRule(0.1)": (J.EpsilonRule(0.1), lambda m, b, a, r, k, kind: generic(a, m, b, r, 0.1)),
    "GammaRule": (
        J.GammaRule(),
        lambda m, b, a, r, k, kind: generic(a, m + 0.25 * pos(m), b + 0.25 * pos(b), r),
    ),
    "GammaRule(0.5)": (
        J.GammaRule(0.5),
        lambda m, b, a, r, k, kind: generic(a, m + 0.5 * pos(m), b + 0.5 * pos(b), r),
    ),
    "WSquareRule": (
        J.WSquareRule(),
        lambda m, b, a, r, k, kind: generic(np.ones_like(a), m**2, np.zeros_like(b), r),
    ),
    "FlatRule": (
        None,  # FlatRule() on convolutions, FlatRule(dense=True) on Dense
        lambda m, b, a, r, k, kind: (
            np.full_like(a, r.sum() / a.size)  # the Dense fast path
            if kind == "linear"
            else generic(np.ones_like(a), k, np.zeros_like(b), r)
        ),
    ),
    "ZPlusRule": (J.ZPlusRule(), lambda m, b, a, r, k, kind: zplus(a, m, b, r)),
    "AlphaBetaRule": (J.AlphaBetaRule(), lambda m, b, a, r, k, kind: alpha_beta(a, m, b, r)),
    "AlphaBetaRule(1,0)": (
        J.AlphaBetaRule(1.0, 0.0),
        lambda m, b, a, r, k, kind: alpha_beta(a, m, b, r, 1.0, 0.0),
    ),
    "ZBoxRule": (J.ZBoxRule(-1.0, 2.0), lambda m, b, a, r, k, kind: zbox(a, m, b, r, -1.0, 2.0)),
    "GeneralizedGammaRule": (
        J.GeneralizedGammaRule(),
        lambda m, b, a, r, k, kind: generalized_gamma(a, m, b, r),
    ),
}
LAYERS = {
    "linear": (lambda: L.Linear(7, 5), (7,)),
    "conv": (lambda: L.Conv2d(2, 3, 3, stride=2, padding=1), (2, 6, 5)),
}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("name", list(RULES))
def test_each_rule_matches_julias_formula(name, kind, backend):
    make_layer, in_shape = LAYERS[kind]
    layer = make_layer()
    rng = np.random.default_rng(1)
    layer.load_state_dict({k: rng.standard_normal(v.shape) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((1, *in_shape))
    y = layer(x, backend=backend)
    r = rng.standard_normal(y.shape)
    rule, formula = RULES[name]
    rule = rule or J.FlatRule(dense=kind == "linear")
    ours = npxai.lrp.step(Record("l", layer, x, y), rule, r, backend)
    m, out_shape = dense_matrix(layer, in_shape)
    ones, _ = dense_matrix(layer, in_shape, ones=True)
    expected = formula(m, bias_vector(layer, out_shape), x.ravel(), r.ravel(), ones, kind)
    assert_close(ours.ravel(), expected, np.float64)


def test_an_exactly_zero_denominator_gets_plus_the_stabilizer():
    """stabilize_denom(0) = +eps (not sign(0) eps = 0): ZeroRule divides by 1.0f-9 there."""
    layer = L.Linear(2, 1)
    layer.load_state_dict({"weight": np.array([[1.0, -1.0]]), "bias": np.zeros(1)})
    x = np.array([[1.0, 1.0]])
    y = layer(x)
    assert y[0, 0] == 0.0
    ours = npxai.lrp.step(Record("l", layer, x, y), J.ZeroRule(), np.ones((1, 1)), "numpy")
    assert_close(ours, np.array([[1.0 / STAB, -1.0 / STAB]]), np.float64)


def network(seed: int) -> npxai.Sequential:
    """Julia's ``Chain(Conv(relu), MaxPool, Conv, BatchNorm(relu), MeanPool, flatten,
    Dense(relu), Dropout, Dense)``, the activations as npxai layers of their own."""
    net = npxai.Sequential(
        L.Conv2d(2, 4, 3, padding=1), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(4, 5, 3, padding=1), L.BatchNorm2d(5), L.ReLU(), L.AvgPool2d(2),
        L.Flatten(), L.Linear(20, 6), L.ReLU(), L.Dropout(), L.Linear(6, 3),
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    state = {k: rng.standard_normal(v.shape) for k, v in net.state_dict().items()}
    state["4.running_var"] = rng.uniform(0.5, 2.0, 5)
    state["4.weight"] = rng.uniform(0.5, 1.5, 5)
    state["4.num_batches_tracked"] = np.array(0)
    net.load_state_dict(state)
    return net


def max_pool_selection(a, channels, size):
    """2x2 max pooling of ``a`` (C x size x size, flattened) as a 0/1 matrix: each output picks
    its window's maximum (the pullback routes the relevance there)."""
    half = size // 2
    p = np.zeros((channels * half * half, a.size))
    grid = a.reshape(channels, size, size)
    for c in range(channels):
        for i in range(half):
            for j in range(half):
                window = grid[c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                di, dj = np.unravel_index(np.argmax(window), (2, 2))
                p[(c * half + i) * half + j, (c * size + 2 * i + di) * size + 2 * j + dj] = 1.0
    return p


def average_pool_matrix(channels, size):
    half = size // 2
    p = np.zeros((channels * half * half, channels * size * size))
    for c in range(channels):
        for i in range(size):
            for j in range(size):
                p[(c * half + i // 2) * half + j // 2, (c * size + i) * size + j] = 0.25
    return p


LOW, HIGH = -1.0, 2.0

# The rules Julia's composites give the network's layers (first layer, second conv, dense layers,
# pooling, batch norm), read off src/composite_presets.jl and src/lrp.jl.
PRESETS = {
    "LRP(model)": (J.Default(), "zero", "zero", "zero", "zero"),
    "EpsilonGammaBox": (J.EpsilonGammaBox(LOW, HIGH), "zbox", "gamma", "epsilon", "pass"),
    "EpsilonPlus": (J.EpsilonPlus(), "zplus", "zplus", "epsilon", "pass"),
    "EpsilonAlpha2Beta1": (J.EpsilonAlpha2Beta1(), "alphabeta", "alphabeta", "epsilon", "pass"),
    "EpsilonPlusFlat": (J.EpsilonPlusFlat(), "flat", "zplus", "epsilon", "pass"),
    "EpsilonAlpha2Beta1Flat": (J.EpsilonAlpha2Beta1Flat(), "flat", "alphabeta", "epsilon", "pass"),
}


def julia_walk(net, x, target, first, conv, dense, bn_rule, logit=False):
    """Julia's backward pass over the network for one sample: ``{layer index: relevance at the
    layer's input}`` (a fused activation passes the relevance: its layer's is the affine part's)."""
    conv0, pool2, conv3, bn4, linear8, linear11 = (net[i] for i in (0, 2, 3, 4, 8, 11))
    m0, shape0 = dense_matrix(conv0, (2, 8, 8))
    ones0, _ = dense_matrix(conv0, (2, 8, 8), ones=True)
    m3, shape3 = dense_matrix(conv3, (4, 4, 4))
    b0, b3 = bias_vector(conv0, shape0), bias_vector(conv3, shape3)
    scale = bn4.weight / np.sqrt(bn4.running_var + bn4.eps)
    scale_v = np.repeat(scale, 16)
    shift_v = np.repeat(bn4.bias - bn4.running_mean * scale, 16)
    avg = average_pool_matrix(5, 4)

    a0 = x.ravel()
    a2 = relu(m0 @ a0 + b0)
    sel = max_pool_selection(a2, 4, 8)
    a3 = sel @ a2
    a4 = m3 @ a3 + b3
    bn = scale_v * a4 + shift_v
    a6 = relu(bn)
    a8 = avg @ a6
    a10 = relu(linear8.weight @ a8 + linear8.bias)
    y = linear11.weight @ a10 + linear11.bias

    eps = {"zero": STAB, "epsilon": EPS}[dense]
    r = np.zeros(3)
    r[target] = y[target] if logit else 1.0
    rel = {11: generic(a10, linear11.weight, linear11.bias, r, eps)}
    rel[10] = rel[9] = rel[11]
    rel[8] = generic(a8, linear8.weight, linear8.bias, rel[9], eps)
    rel[7] = rel[8]
    rel[6] = generic(a6, avg, np.zeros(20), rel[7])  # ZeroRule on MeanPool
    rel[5] = rel[6]
    if bn_rule == "pass":
        rel[4] = rel[5]
    else:  # ZeroRule on BatchNorm(relu): the unmodified layer, its activation included
        rel[4] = a4 * (scale_v * (bn > 0) * (rel[5] / stabilize_denom(relu(bn))))
    rel[3] = {
        "zero": lambda: generic(a3, m3, b3, rel[4]),
        "gamma": lambda: generic(a3, m3 + 0.25 * pos(m3), b3 + 0.25 * pos(b3), rel[4]),
        "zplus": lambda: zplus(a3, m3, b3, rel[4]),
        "alphabeta": lambda: alpha_beta(a3, m3, b3, rel[4]),
    }[conv]()
    rel[2] = generic(a2, sel, np.zeros(len(a3)), rel[3])  # ZeroRule on MaxPool
    rel[1] = rel[2]
    rel[0] = {
        "zero": lambda: generic(a0, m0, b0, rel[1]),
        "zbox": lambda: zbox(a0, m0, b0, rel[1], LOW, HIGH, activation="relu"),
        "zplus": lambda: zplus(a0, m0, b0, rel[1]),
        "alphabeta": lambda: alpha_beta(a0, m0, b0, rel[1]),
        "flat": lambda: generic(np.ones_like(a0), ones0, np.zeros_like(b0), rel[1]),
    }[first]()
    return rel


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_match_julias_walk_layer_by_layer(preset, backend):
    composite, *rules = PRESETS[preset]
    net = network(7)
    x = np.random.default_rng(8).uniform(LOW, HIGH, (2, 2, 8, 8))
    target = [0, 2]
    e = J.lrp(net, composite, backend=backend, record=True)(x, target)
    for n in range(len(x)):
        expected = julia_walk(net, x[n], target[n], *rules)
        for k in range(12):
            ours = e.extras["relevance"][str(k)][n].ravel()
            assert_close(ours, expected[k], np.float64)
    assert_close(e.attribution[1].ravel(), expected[0], np.float64)


def test_output_relevance_is_the_output_value_unless_normalized():
    composite, *rules = PRESETS["EpsilonPlus"]
    net = network(9)
    x = np.random.default_rng(10).uniform(LOW, HIGH, (1, 2, 8, 8))
    e = J.lrp(net, composite, normalize_output_relevance=False)(x, 1)
    expected = julia_walk(net, x[0], 1, *rules, logit=True)[0]
    assert_close(e.attribution.ravel(), expected, np.float64)


@pytest.mark.parametrize("preset", ["LRP(model)", "EpsilonPlus"])
def test_skip_connections_split_by_branch_output(preset):
    """Julia's SkipConnection, whatever the composite: ``c = R ./ stabilize_denom(layers(a) + a)``,
    the skip keeps ``c a``, the branch gets ``c layers(a)`` and runs its own rules."""
    composite, _, _, dense, _ = PRESETS[preset]
    eps = {"zero": STAB, "epsilon": EPS}[dense]
    net = npxai.Sequential(L.Linear(3, 4), L.ReLU(), npxai.Residual(L.Linear(4, 4)), L.Linear(4, 2))
    rng = np.random.default_rng(11)
    net.load_state_dict({k: rng.standard_normal(v.shape) for k, v in net.state_dict().items()})
    x = rng.standard_normal((1, 3))
    e = J.lrp(net, composite)(x, 1)
    state = net.state_dict()
    w0, b0, w2, b2, w3, b3 = (
        state[k]
        for k in ("0.weight", "0.bias", "2.branch.weight", "2.branch.bias", "3.weight", "3.bias")
    )
    h = relu(w0 @ x[0] + b0)
    u = w2 @ h + b2
    v = u + h
    r = generic(v, w3, b3, np.array([0.0, 1.0]), eps)
    c = r / stabilize_denom(u + h)
    r_h = c * h + generic(h, w2, b2, c * u, eps)
    assert_close(e.attribution[0], generic(x[0], w0, b0, r_h, eps), np.float64)


def test_first_layer_rules_need_a_convolution_first():
    """FirstLayerTypeMap(ConvLayer => ...) looks at the model's first layer only."""
    mlp = npxai.Sequential(L.Flatten(), L.Linear(8, 4), L.ReLU(), L.Linear(4, 2))
    rules = J.EpsilonPlusFlat().assign(mlp)
    assert rules["1"] == R.EpsilonRule(EPS) and rules["3"] == R.EpsilonRule(EPS)
    nested = npxai.Sequential(OrderedDict(
        features=npxai.Sequential(L.Conv2d(1, 2, 3), L.ReLU(), L.MaxPool2d(2), L.Conv2d(2, 2, 3)),
        flatten=L.Flatten(), classifier=L.Linear(2, 2),
    ))  # fmt: skip
    rules = J.EpsilonGammaBox(LOW, HIGH).assign(nested)
    assert rules["features.0"] == R.ZBoxRule(LOW, HIGH, epsilon=STAB)
    assert rules["features.3"] == R.GammaRule(0.25, epsilon=STAB)
    assert rules["features.2"] == R.EpsilonRule(STAB)
    assert isinstance(rules["flatten"], R.PassRule)
    normalized_first = npxai.Sequential(L.BatchNorm2d(1), L.Conv2d(1, 2, 3))
    rules = J.EpsilonAlpha2Beta1Flat().assign(normalized_first)
    assert rules["1"] == R.AlphaBetaRule(2.0, 1.0, epsilon=STAB)


def test_the_model_check_rejects_activations_julia_does_not_support():
    net = npxai.Sequential(L.Linear(3, 4), L.Tanh(), L.Linear(4, 2))
    with pytest.raises(ValueError, match=r"'1' \(Tanh\)"):
        J.lrp(net)
    assert isinstance(J.lrp(net, skip_checks=True).rules["1"], R.PassRule)
