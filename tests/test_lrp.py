"""LRP: every rule against its dense-matrix formula, conservation, LRP-0 = InputTimesGradient,
no NaN on dead units, the two backends alike, and the composites' bookkeeping."""

import numpy as np
import pytest
import torch
from conftest import assert_close, bias_free_relu_net, both_kernel_builds, dense_matrix
from hypothesis import given, settings
from hypothesis import strategies as st

import npxai
from npxai import composites as C
from npxai import layers as L
from npxai import rules as R
from npxai.module import Record


def sgn0(z):
    return np.where(z >= 0, 1.0, -1.0)


def expected_relevance(rule, m, b, x, r, mask):
    """Each rule's formula on the dense matrix ``m`` (rows: outputs), written out independently.
    ``mask`` marks the matrix entries that are connections (for Flat)."""
    p, n = np.maximum, np.minimum
    eps = 1e-6

    def s(z):
        return r / (z + eps * sgn0(z))

    if isinstance(rule, R.ZeroRule):
        z = m @ x + b
        return x * (m.T @ np.where(z != 0, r / np.where(z != 0, z, 1), 0))
    if isinstance(rule, R.EpsilonRule):
        return x * (m.T @ s(m @ x + b))
    if isinstance(rule, R.GammaRule):
        mg, bg = m + 0.25 * p(m, 0), b + 0.25 * p(b, 0)
        return x * (mg.T @ s(mg @ x + bg))
    if isinstance(rule, R.GeneralizedGammaRule):
        up, down = m + 0.25 * p(m, 0), m + 0.25 * n(m, 0)
        z0 = m @ x + b
        sp = np.where(z0 > 0, r, 0) / (lambda z: z + eps * sgn0(z))(
            up @ p(x, 0) + down @ n(x, 0) + b + 0.25 * p(b, 0)
        )
        sn = np.where(z0 < 0, r, 0) / (lambda z: z + eps * sgn0(z))(
            down @ p(x, 0) + up @ n(x, 0) + b + 0.25 * n(b, 0)
        )
        return (
            p(x, 0) * (up.T @ sp)
            + n(x, 0) * (down.T @ sp)
            + p(x, 0) * (down.T @ sn)
            + n(x, 0) * (up.T @ sn)
        )
    if isinstance(rule, R.WSquareRule):
        return (m**2).T @ s((m**2).sum(axis=1) + b**2)
    if isinstance(rule, R.FlatRule):
        return mask.T @ s(mask.sum(axis=1))
    if isinstance(rule, R.ZPlusRule):
        sz = s(p(m, 0) @ p(x, 0) + n(m, 0) @ n(x, 0) + p(b, 0))
        return p(x, 0) * (p(m, 0).T @ sz) + n(x, 0) * (n(m, 0).T @ sz)
    if isinstance(rule, R.AlphaBetaRule):
        sp = s(p(m, 0) @ p(x, 0) + n(m, 0) @ n(x, 0) + p(b, 0))
        sn = s(n(m, 0) @ p(x, 0) + p(m, 0) @ n(x, 0) + n(b, 0))
        pos = p(x, 0) * (p(m, 0).T @ sp) + n(x, 0) * (n(m, 0).T @ sp)
        neg = p(x, 0) * (n(m, 0).T @ sn) + n(x, 0) * (p(m, 0).T @ sn)
        return 2 * pos - neg
    if isinstance(rule, R.ZBoxRule):
        lo, hi = np.full_like(x, -1.0), np.full_like(x, 2.0)
        sz = s(m @ x - p(m, 0) @ lo - n(m, 0) @ hi)
        return x * (m.T @ sz) - lo * (p(m, 0).T @ sz) - hi * (n(m, 0).T @ sz)
    raise AssertionError(rule)


RULES = [R.ZeroRule(), R.EpsilonRule(), R.GammaRule(), R.GeneralizedGammaRule(), R.WSquareRule(), R.FlatRule(), R.ZPlusRule(),
         R.AlphaBetaRule(), R.ZBoxRule(-1.0, 2.0)]  # fmt: skip
LAYERS = [
    lambda: L.Linear(7, 5),
    lambda: L.Conv2d(2, 3, 3),
    lambda: L.Conv2d(2, 4, (3, 2), stride=2, padding=1),
    lambda: L.Conv2d(4, 4, 3, padding=(1, 2), groups=2, dilation=(1, 2)),
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    "make_layer", LAYERS, ids=["linear", "conv", "conv-stride-pad", "conv-groups"]
)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("inputs", ["signed", "non-negative"])
def test_each_rule_matches_its_dense_matrix_formula(rule, make_layer, backend, inputs):
    """Non-negative inputs (what follows a ReLU) take the step's path that skips all-zero terms."""
    npxai.manual_seed(0)
    layer = make_layer()
    in_shape = (7,) if isinstance(layer, L.Linear) else (layer.in_channels, 6, 5)
    rng = np.random.default_rng(1)
    layer.load_state_dict({k: rng.standard_normal(v.shape) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((1, *in_shape))
    if inputs == "non-negative":
        x = np.maximum(x, 0)
    y = layer(x, backend=backend)
    r = rng.standard_normal(y.shape)
    ours = npxai.lrp.step(Record("l", layer, x, y), rule, r, backend)
    m, out_shape = dense_matrix(layer, in_shape)
    assert tuple(out_shape) == y.shape[1:]
    b = np.broadcast_to(layer.bias[:, None], (len(layer.bias), int(np.prod(out_shape)) // len(layer.bias))).ravel() \
        if isinstance(layer, L.Conv2d) else layer.bias  # fmt: skip
    mask, _ = dense_matrix(layer, in_shape, ones=True)
    expected = expected_relevance(rule, m, b, x.ravel(), r.ravel(), mask)
    assert_close(ours.ravel(), expected, np.float64)


def affine_matrix(f, in_shape):
    """``(A, t)`` with ``f(x) = A x + t`` for an affine torch function ``f``, from unit vectors."""
    n_in = int(np.prod(in_shape))
    t = f(torch.zeros((1, *in_shape), dtype=torch.float64)).reshape(-1)
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
    return (f(basis).reshape(n_in, -1) - t).T.numpy(), t.numpy()


def batch_norm(channels):
    norm = L.BatchNorm2d(channels)
    rng = np.random.default_rng(2)
    norm.load_state_dict({k: rng.uniform(0.5, 1.5, v.shape) if k != "num_batches_tracked" else v
                          for k, v in norm.state_dict().items()})  # fmt: skip
    return norm


NORM = batch_norm(2)
FIXED = [  # (layer, rule, the same map in torch)
    (L.AvgPool2d(3, 2, 1), R.NormRule(), lambda x: torch.nn.functional.avg_pool2d(x, 3, 2, 1)),
    (L.AdaptiveAvgPool2d((2, 3)), R.NormRule(),
     lambda x: torch.nn.functional.adaptive_avg_pool2d(x, (2, 3))),
    (L.MaxPool2d(2), R.AveragePoolRule(), lambda x: torch.nn.functional.avg_pool2d(x, 2)),
    (L.MaxPool2d(3, 2, 1, ceil_mode=True), R.AveragePoolRule(1e-3),
     lambda x: torch.nn.functional.avg_pool2d(x, 3, 2, 1, ceil_mode=True)),
    (NORM, R.EpsilonRule(1e-3), lambda x: torch.nn.functional.batch_norm(
        x, *(torch.tensor(v) for v in (NORM.running_mean, NORM.running_var, NORM.weight,
                                       NORM.bias)), eps=NORM.eps)),
]  # fmt: skip


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    "layer, rule, torch_map", FIXED, ids=["avg", "adaptive", "max-as-avg", "max-as-avg-ceil", "bn"]
)
def test_parameter_free_rules_match_their_dense_matrix_formula(layer, rule, torch_map, backend):
    """Pools and an unfolded batch norm are affine maps ``A x + t``: ``R_in = x * (A^T (R /
    stab(A x + t)))``; a max pool under AveragePoolRule uses the average pool's ``A``."""
    x = np.random.default_rng(3).standard_normal((1, 2, 7, 6))
    y = layer(x, backend=backend)
    r = np.random.default_rng(4).standard_normal(y.shape)
    ours = npxai.lrp.step(Record("l", layer, x, y), rule, r, backend)
    a, t = affine_matrix(torch_map, x.shape[1:])
    z = a @ x.ravel() + t
    expected = x.ravel() * (a.T @ (r.ravel() / (z + rule.epsilon * sgn0(z))))
    assert_close(ours.ravel(), expected, np.float64)


class NoBiasEpsilon(R.LinearRule):
    """A custom rule, as a user writes one: epsilon with the bias left out of the denominator."""

    def __init__(self, epsilon: float = 1e-6):
        super().__init__(epsilon, "sign")

    def groups(self):
        return [R.Group([R.Term(bias=None)])]  # one group of one term: x' = x, W' = W, no bias


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_custom_rule_of_a_few_lines_runs_on_both_backends(backend):
    npxai.manual_seed(1)
    layer = L.Conv2d(2, 3, 3, stride=2, padding=1)
    x = np.random.default_rng(7).standard_normal((1, 2, 6, 5))
    y = layer(x, backend=backend)
    r = np.random.default_rng(8).standard_normal(y.shape)
    ours = npxai.lrp.step(Record("l", layer, x, y), NoBiasEpsilon(), r, backend)
    m, _ = dense_matrix(layer, x.shape[1:])
    z = m @ x.ravel()
    expected = x.ravel() * (m.T @ (r.ravel() / (z + 1e-6 * sgn0(z))))
    assert_close(ours.ravel(), expected, np.float64)
    model = npxai.Sequential(layer, L.ReLU(), L.Flatten(), L.Linear(27, 2))
    analyzer = npxai.LRP(model, C.Composite((C.ByType(L.Conv2d), NoBiasEpsilon())))
    assert "NoBiasEpsilon(epsilon=1e-06, stabilizer='sign')" in repr(analyzer)
    assert np.isfinite(analyzer(x, target=1).attribution).all()


# (alpha-beta with beta > 0 conserves only where every neuron has contributions of both signs, so
# its conserving form alpha=1, beta=0 is tested here)
CONSERVING = [R.ZeroRule(), R.ZPlusRule(epsilon=1e-12), R.AlphaBetaRule(1.0, 0.0, epsilon=1e-12),
              R.GammaRule(epsilon=1e-12), R.FlatRule(epsilon=1e-12), R.WSquareRule(epsilon=1e-12),
              R.ZBoxRule(-3.0, 3.0, epsilon=1e-12)]  # fmt: skip


@pytest.mark.parametrize("rule", CONSERVING, ids=lambda r: type(r).__name__)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 3))
def test_bias_free_relu_networks_conserve_relevance(rule, seed, batch):
    model = bias_free_relu_net(seed % 50)
    composite = C.Composite(
        (C.ByType(L.Linear, L.Conv2d), rule), (C.ByType(L.AvgPool2d), R.NormRule(1e-12))
    )
    x = np.random.default_rng(seed).standard_normal((batch, 2, 8, 8))
    e = npxai.LRP(model, composite, record=True)(x)
    total = e.attribution.reshape(batch, -1).sum(axis=1)
    # all relevance (1 at the target) arrives, unless it met a unit that every input left dead
    for key, _, _, out, into in e.extras["conservation"]:
        assert np.all(np.abs(into - out) <= 1e-9 + 1e-6 * np.abs(out)) or np.all(
            np.abs(into) <= np.abs(out) + 1e-9
        ), key
    assert np.all(total <= 1 + 1e-6)
    assert np.isfinite(e.attribution).all()


def test_zero_rule_on_a_relu_network_is_input_times_gradient():
    model = bias_free_relu_net(3)
    x = np.random.default_rng(3).standard_normal((4, 2, 8, 8))
    composite = C.Composite(
        (C.ByType(L.Linear, L.Conv2d), R.ZeroRule()), (C.ByType(L.AvgPool2d), R.NormRule(0.0))
    )
    lrp0 = npxai.LRP(model, composite, output_relevance="logit")(x, target=1)
    ixg = npxai.InputTimesGradient(model)(x, target=1)
    assert_close(lrp0.attribution, ixg.attribution, np.float64)


def test_gradient_rule_everywhere_is_the_gradient():
    """(npxai.gradient itself is checked against torch in tests/test_gradient.py)"""
    model = npxai.Sequential(bias_free_relu_net(5), L.Tanh(), L.Linear(3, 2), L.BatchNorm1d(2))
    x = np.random.default_rng(5).standard_normal((2, 2, 8, 8))
    everything = C.Composite((C.IndexRange(0, 100), R.GradientRule()))
    e = npxai.LRP(model, everything, canonize=False)(x, target=[1, 0])  # the batch norm too
    assert_close(e.attribution, npxai.gradient(model, x, target=[1, 0]), np.float64)


def test_epsilon_tends_to_input_times_gradient_as_epsilon_falls():
    model = bias_free_relu_net(4)
    x = np.random.default_rng(4).standard_normal((2, 2, 8, 8))
    ixg = npxai.InputTimesGradient(model)(x, target=0).attribution
    errors = []
    for eps in (1e-1, 1e-3, 1e-5, 1e-7):
        composite = C.Composite((C.ByType(L.Linear, L.Conv2d), R.EpsilonRule(eps)),
                                (C.ByType(L.AvgPool2d), R.NormRule(0.0)))  # fmt: skip
        e = npxai.LRP(model, composite, output_relevance="logit")(x, target=0)
        errors.append(np.abs(e.attribution - ixg).max())
    assert (
        all(a > b for a, b in zip(errors, errors[1:], strict=False))
        and errors[-1] < 1e-3 * np.abs(ixg).max()
    )


@pytest.mark.parametrize("preset", [C.EpsilonPlus(), C.EpsilonPlusFlat(), C.EpsilonAlpha2Beta1(),
                                    C.EpsilonAlpha2Beta1Flat(), C.EpsilonGammaBox(-2.0, 2.0),
                                    C.ExcitationBackprop()], ids=lambda c: c.name)  # fmt: skip
def test_presets_give_finite_relevance_on_dead_units_and_agree_across_backends(preset):
    model = npxai.models.vgg11(num_classes=5)
    state = model.state_dict()
    state["features.0.weight"][:8] = 0  # dead units
    state["features.0.bias"][:8] = 0
    model.load_state_dict(state)
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32))
    x[1] = 0  # a zero input
    ours = npxai.LRP(model, preset, backend="numba")(x)
    reference = npxai.LRP(model, preset, backend="numpy")(x)
    assert np.isfinite(ours.attribution).all()
    assert_close(ours.attribution, reference.attribution, np.float64)


def test_resnet_sums_split_relevance_and_the_table_prints():
    model = npxai.models.resnet18(num_classes=4)
    analyzer = npxai.LRP(model, C.EpsilonPlus(), record=True)
    text = repr(analyzer)
    assert "layer1.0.add" in text and "NormRule" in text and "conv1" in text
    e = analyzer(np.random.default_rng(6).standard_normal((1, 3, 32, 32)))
    add = dict((row[0], row) for row in e.extras["conservation"])["layer1.0.add"]
    np.testing.assert_allclose(add[4], add[3], rtol=1e-4)  # the sum conserves (up to epsilon)
    assert "layer1.0.add" in npxai.conservation_table(e)


def test_later_entries_override_and_keys_select_containers():
    model = npxai.models.vgg11(num_classes=3)
    override = [
        (C.Keys("classifier.0", "classifier.6"), R.ZeroRule()),
        (C.IndexRange(0, 1), R.FlatRule()),
    ]
    rules = (C.EpsilonPlus() + override).assign(model)
    assert isinstance(rules["features.0"], R.FlatRule)
    assert isinstance(rules["features.3"], R.ZPlusRule)
    assert isinstance(rules["features.2"], R.GradientRule)
    assert isinstance(rules["classifier.0"], R.ZeroRule)
    assert isinstance(rules["classifier.3"], R.EpsilonRule)
    assert isinstance(rules["classifier.1"], R.PassRule)
    leaves = [(k, m) for k, m in model.named_modules() if isinstance(m, npxai.Layer)]
    assert C.Keys("classifier").select(leaves) == [f"classifier.{i}" for i in range(7)]
    first_two = C.Composite(
        (C.FirstN(2, L.Conv2d), R.GammaRule()), (C.LastOfType(L.Linear), R.EpsilonRule(0.1))
    )
    rules = first_two.assign(model)
    gamma = [k for k, r in rules.items() if isinstance(r, R.GammaRule)]
    assert gamma == ["features.0", "features.3"]
    assert rules["classifier.6"] == R.EpsilonRule(0.1)


def test_bad_rules_and_layers_are_named():
    model = npxai.models.vgg11(num_classes=3)
    with pytest.raises(
        ValueError,
        match=r"GammaRule\(.*\) cannot run on layer 'features.2' \(MaxPool2d\); it takes NormRule, EpsilonRule, ZeroRule, GradientRule, AveragePoolRule",
    ):
        npxai.LRP(model, C.Composite((C.ByType(L.MaxPool2d), R.GammaRule())))
    with pytest.raises(ValueError, match=r"AveragePoolRule\(.*\) cannot run on layer 'features.0'"):
        npxai.LRP(model, C.Composite((C.ByType(L.Conv2d), R.AveragePoolRule())))
    dilated = npxai.Sequential(L.MaxPool2d(2, dilation=2))
    with pytest.raises(
        ValueError, match=r"cannot run on layer '0' \(MaxPool2d\); it takes .*GradientRule$"
    ):
        npxai.LRP(dilated, C.Composite((C.ByType(L.MaxPool2d), R.AveragePoolRule())))
    with_softmax = npxai.Sequential(L.Linear(3, 2), L.Softmax(1))
    with pytest.raises(ValueError, match=r"no rule covers layer '1' \(Softmax\)"):
        npxai.LRP(with_softmax)
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        R.AlphaBetaRule(2.0, 2.0)
    with pytest.raises(ValueError, match="unknown stabilizer 'tanh'"):
        R.EpsilonRule(stabilizer="tanh")
    with pytest.raises(ValueError, match="the model has no layer 'head'"):
        C.Composite((C.Keys("head"), R.ZeroRule())).assign(model)
    with pytest.raises(ValueError, match="output_relevance must be 'one' or 'logit'"):
        npxai.LRP(model, output_relevance="softmax")


@pytest.mark.parametrize("how", R.STABILIZERS)
def test_stabilizers(how):
    z = np.array([-1.0, -1e-9, 0.0, 1e-9, 1.0])
    expected = {
        "sign": [-1.1, -0.1 - 1e-9, 0.1, 0.1 + 1e-9, 1.1],
        "clip": [-1.0, -0.1, 0.1, 0.1, 1.0],
        "zero": [-1.0, -1e-9, 0.1, 1e-9, 1.0],
    }[how]
    np.testing.assert_allclose(R.stabilize(z, 0.1, how), expected, rtol=1e-12)


@settings(max_examples=30)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 40)),
    dtype=st.sampled_from([np.float32, np.float64]),
    stabilizer=st.sampled_from(R.STABILIZERS),
    epsilon=st.sampled_from([0.0, 1e-6, 0.5]),
    data=st.data(),
)
@both_kernel_builds
def test_the_compiled_ratio_is_the_reference_division(shape, dtype, stabilizer, epsilon, data):
    """kernels/cpu/lrp.py's one-pass ``share / stab(z)`` against the NumPy reference, bit for bit,
    exact zeros and numbers smaller than epsilon included."""
    from npxai.kernels.cpu import lrp as compiled

    from npxai.reference import lrp as reference

    seed = data.draw(st.integers(0, 2**31), label="seed")
    rng = np.random.default_rng(seed)
    share, z = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    z[rng.random(shape) < 0.3] = 0
    z[rng.random(shape) < 0.2] *= 1e-7
    expected = reference.relevance_ratio(share, z, epsilon, stabilizer)
    np.testing.assert_array_equal(compiled.relevance_ratio(share, z, epsilon, stabilizer), expected)
    assert expected.dtype == dtype
    # the reference is the rules' formula: stab(z) from npxai.rules, 0 where it is 0
    d = R.stabilize(z, epsilon, stabilizer)
    assert d.dtype == dtype
    np.testing.assert_array_equal(expected, np.where(d != 0, share / np.where(d != 0, d, 1), 0))


def test_modified_parameters_are_cached_and_forgotten_when_the_parameters_change():
    """A rule's W' is made once per layer (Module.cached), at most CACHE_SIZE derived arrays a
    layer, and made anew after load_state_dict or an assignment."""
    model, other = bias_free_relu_net(1), bias_free_relu_net(2)
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8))
    analyzer = npxai.LRP(model, C.EpsilonAlpha2Beta1())
    analyzer(x)
    first_conv = model[0]
    cached = dict(first_conv._cache)
    assert cached and len(cached) <= first_conv.CACHE_SIZE
    analyzer(x)
    assert all(first_conv._cache[k] is v for k, v in cached.items())  # reused, not remade
    for composite in (C.EpsilonGammaBox(-3.0, 3.0), C.ExcitationBackprop(), C.EpsilonPlus()):
        npxai.LRP(model, composite)(x)
        assert all(len(m._cache) <= m.CACHE_SIZE for m in model.modules())
    model.load_state_dict(other.state_dict())
    assert not first_conv._cache
    expected = npxai.LRP(other, C.EpsilonAlpha2Beta1())(x).attribution
    np.testing.assert_array_equal(analyzer(x).attribution, expected)
    model[0].weight = np.zeros_like(model[0].weight)
    assert not npxai.LRP(model, C.EpsilonAlpha2Beta1())(x).attribution.any()


def test_the_compiled_ratio_refuses_what_it_cannot_divide():
    from npxai.kernels.cpu import lrp as compiled

    a = np.ones((2, 3))
    with pytest.raises(
        ValueError, match="unknown stabilizer 'tanh'; choose one of sign, clip, zero"
    ):
        compiled.relevance_ratio(a, a, 0.1, "tanh")
    with pytest.raises(ValueError, match=r"share float64 \(2, 3\) and z float32 \(2, 3\) must"):
        compiled.relevance_ratio(a, a.astype(np.float32), 0.1, "sign")
    with pytest.raises(ValueError, match=r"share float64 \(6,\) and z float64 \(2, 3\) must"):
        compiled.relevance_ratio(a.reshape(-1), a, 0.1, "sign")


def test_selectors_print_as_they_are_written():
    composite = C.Composite(
        (C.ByType(L.Linear), R.EpsilonRule()),
        (C.FirstOfType(L.Conv2d), R.FlatRule()),
        (C.LastOfType(L.Conv2d, L.Linear), R.ZeroRule()),
        (C.FirstN(2, L.Conv2d), R.ZPlusRule()),
        (C.IndexRange(0, 3), R.GradientRule()),
        (C.Keys("features.0", "fc"), R.PassRule()),
        name="Mine",
    )
    lines = repr(composite).splitlines()
    assert [line.split(":")[0].strip() for line in lines[1:-1]] == [
        "ByType(Linear)", "FirstOfType(Conv2d)", "LastOfType(Conv2d, Linear)",
        "FirstN(2, Conv2d)", "IndexRange(start=0, stop=3)", "Keys('features.0', 'fc')",
    ]  # fmt: skip


# --- habits users bring (issue 15) ---


def bn_net():
    """conv -> batch norm (non-trivial statistics) -> ReLU -> dense, float64."""
    npxai.manual_seed(3)
    model = npxai.Sequential(L.Conv2d(2, 3, 3, padding=1), batch_norm(3), L.ReLU(), L.Flatten(),
                             L.Linear(3 * 6 * 6, 4))  # fmt: skip
    model.load_state_dict({k: np.asarray(v, np.float64) for k, v in model.state_dict().items()})
    return model


def test_a_preset_by_name_or_uncalled_is_the_called_preset():
    model = bias_free_relu_net(5)
    x = np.random.default_rng(7).standard_normal((2, 2, 8, 8))
    expected = npxai.LRP(model, C.EpsilonPlus())(x, target=1).attribution
    for composite in ["EpsilonPlus", C.EpsilonPlus]:
        analyzer = npxai.LRP(model, composite)
        assert analyzer.composite.name == "EpsilonPlus"
        np.testing.assert_array_equal(analyzer(x, target=1).attribution, expected)


def test_anything_else_as_composite_is_refused_with_the_right_call():
    model = bias_free_relu_net(5)
    with pytest.raises(TypeError, match=r"composite must be a Composite, such as "
                       r"npxai.composites.EpsilonPlus\(\), .* got int 3"):  # fmt: skip
        npxai.LRP(model, 3)
    with pytest.raises(ValueError, match="unknown composite 'EpsilonPlusPlus'; the presets are "
                       "EpsilonPlus, EpsilonPlusFlat"):  # fmt: skip
        npxai.LRP(model, "EpsilonPlusPlus")
    for box in ["EpsilonGammaBox", C.EpsilonGammaBox]:
        with pytest.raises(TypeError, match=r"EpsilonGammaBox\(low=..., high=...\)"):
            npxai.LRP(model, box)
    with pytest.raises(TypeError, match="canonize must be True or False"):
        npxai.LRP(model, canonize="no")


def test_lrp_folds_batch_norms_on_a_copy_by_default():
    model = bn_net()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(8).standard_normal((2, 2, 6, 6))
    for composite in [C.EpsilonPlus(), C.EpsilonAlpha2Beta1()]:
        folded = npxai.LRP(npxai.canonize(model), composite)(x, target=[0, 2]).attribution
        default = npxai.LRP(model, composite)(x, target=[0, 2]).attribution
        np.testing.assert_array_equal(default, folded)
        unfolded = npxai.LRP(model, composite, canonize=False)(x, target=[0, 2]).attribution
        assert np.abs(unfolded - folded).max() > 0.1 * np.abs(folded).max()
    assert isinstance(model[1], L.BatchNorm2d)  # the caller's model is unchanged
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    # CRP runs on its LRP analyzer's (folded) model
    crp = npxai.CRP(npxai.LRP(model, C.EpsilonPlus()), "0", npxai.TopNFeatures(2))(x)
    expected = npxai.CRP(npxai.LRP(npxai.canonize(model), C.EpsilonPlus()), "0",
                         npxai.TopNFeatures(2))(x)  # fmt: skip
    np.testing.assert_array_equal(crp.attribution, expected.attribution)


def test_lrp_with_per_class_weights_is_the_weighted_sum_of_one_class_relevances():
    """Every LRP step is linear in the relevance it receives (for the logit output relevance
    too, the seed being ``w * output``)."""
    model = bn_net()
    x = np.random.default_rng(9).standard_normal((2, 2, 6, 6))
    weights = np.random.default_rng(10).standard_normal((2, 4))
    for relevance in ["one", "logit"]:
        analyzer = npxai.LRP(model, C.EpsilonPlus(), output_relevance=relevance)
        expected = sum(weights[:, [k], None, None] * analyzer(x, target=k).attribution
                       for k in range(4))  # fmt: skip
        assert_close(analyzer(x, target=weights).attribution, expected, np.float64)
