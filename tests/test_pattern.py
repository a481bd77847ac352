"""PatternNet and PatternAttribution: the paper's linear toy problem (the pattern finds the signal
direction, the weight does not); on small ReLU networks (Linear-ReLU-Linear, a Linear over the
positions of a sequence, and a CNN with a strided, dilated, grouped convolution and max pooling)
the patterns against the paper's formulas evaluated in plain NumPy on an explicit im2col of the
recorded layer inputs (float64, 1e-10), and the explanations against a backward pass written out
with those patterns (NumPy, and torch autograd for the transposed convolutions and the
max-pooling switches; 1e-10); every other layer kind passing the signal as torch's gradient
(1e-10); fitting in batches against fitting at once (1e-12); the .npz round trip (exact); the
numpy, numba (1e-12) and cuda (simulator, 1e-10) backends against each other; the errors by
name."""

import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import relative_error

import npxai
from npxai import layers as L
from npxai.analyzers.pattern import ESTIMATOR_KEY, PatternAttribution, PatternNet
from npxai.errors import (
    LayerInputError,
    MissingFileError,
    NotFittedError,
    PatternFileError,
    UnsupportedLayerError,
)

ESTIMATORS = ("two_component", "linear")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- the paper's linear example: a signal and a distractor ----------------------------------


def toy_problem(n: int = 4000):
    """``x = a_s s + a_d d``: signal direction ``a_s = (1, 0)``, distractor ``a_d = (1, 1)``; the
    filter ``w = (1, -1)`` cancels the distractor (``w^T a_d = 0``) and recovers ``y = s``, but
    points along neither."""
    rng = np.random.default_rng(0)
    a_s, a_d, w = np.array([1.0, 0.0]), np.array([1.0, 1.0]), np.array([1.0, -1.0])
    s, d = rng.standard_normal(n), rng.standard_normal(n)
    x = np.outer(s, a_s) + np.outer(d, a_d)
    model = npxai.Sequential(L.Linear(2, 1, bias=False))
    model[0].weight = w[None, :]
    return model, x, s, a_s, w


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_toy_problem_pattern_recovers_signal_direction(estimator):
    model, x, s, a_s, w = toy_problem()
    net = PatternNet(model, estimator=estimator, backend="numpy").fit(x)
    a = net.patterns["0"][0]
    assert cosine(a, a_s) > 0.999
    assert cosine(w, a_s) < 0.71  # the gradient: 1 / sqrt(2)
    gradient = npxai.gradient(model, x[:5], 0, backend="numpy")
    assert cosine(gradient[0], a_s) < 0.71
    # a linear model's PatternNet is the signal estimate a y, PatternAttribution w ⊙ a y (y = s)
    signal = net(x, 0).attribution
    assert relative_error(signal, np.outer(s, a)) < 1e-12
    assert cosine(signal, np.outer(s, a_s)) > 0.999
    attribution = PatternAttribution(model, estimator=estimator, backend="numpy").fit(x)
    assert relative_error(attribution(x, 0).attribution, np.outer(s, w * a)) < 1e-12


# --- the formulas, independently --------------------------------------------------------------


def observations(layer, x: np.ndarray, y: np.ndarray, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Output unit ``unit``'s observations ``(X (S, D), y (S,))``: a Linear's input rows; a
    Conv2d's input patches, one per output position, cut out of the zero-padded input one by one
    (its group's channels only)."""
    if isinstance(layer, L.Linear):
        return x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])[:, unit]
    top, bottom, left, right = layer.explicit_padding()
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    cg = layer.in_channels // layer.groups
    group = unit // (layer.out_channels // layer.groups)
    rows, values = [], []
    for n in range(y.shape[0]):
        for p in range(y.shape[2]):
            for q in range(y.shape[3]):
                patch = xp[n, group * cg : (group + 1) * cg,
                           p * sh : p * sh + dh * (kh - 1) + 1 : dh,
                           q * sw : q * sw + dw * (kw - 1) + 1 : dw]  # fmt: skip
                rows.append(patch.reshape(-1))
                values.append(y[n, unit, p, q])
    return np.array(rows), np.array(values)


def paper_pattern(layer, x: np.ndarray, y: np.ndarray, estimator: str) -> np.ndarray:
    """``a = cov[x, y] / (w^T cov[x, y])`` (linear), ``a+ = (E+[x y] - E+[x] E+[y]) / (w^T E+[x y]
    - w^T E+[x] E+[y])`` over the observations with ``y > 0`` (two_component), unit by unit."""
    w = layer.weight.reshape(layer.weight.shape[0], -1).astype(np.float64)
    pattern = np.zeros_like(w)
    for j in range(len(w)):
        xs, ys = observations(layer, x, y, j)
        if estimator == "two_component":
            xs, ys = xs[ys > 0], ys[ys > 0]
        assert len(ys) > 1  # every unit of these nets is active on some inputs
        e_xy, e_x, e_y = (xs * ys[:, None]).mean(axis=0), xs.mean(axis=0), ys.mean()
        pattern[j] = (e_xy - e_x * e_y) / (w[j] @ e_xy - w[j] @ e_x * e_y)
    return pattern.reshape(layer.weight.shape)


def data(shape: tuple[int, ...], n: int = 48, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape))


def balanced(model: npxai.Sequential, x: np.ndarray, seed: int) -> npxai.Sequential:
    """``model`` with standard-normal weights over ``sqrt(fan_in)`` (float64) and each unit's
    bias set, layer by layer, to minus a quantile (from 0.3 to 0.7, unit by unit) of its
    pre-activation on ``x``: every unit is active on 30% to 70% of the inputs, no two alike."""
    rng = np.random.default_rng(seed)
    for key, layer in model.named_modules():
        if isinstance(layer, L.Linear | L.Conv2d):
            w = layer.weight
            layer.weight = rng.standard_normal(w.shape) / np.sqrt(np.prod(w.shape[1:]))
            layer.bias = np.zeros(w.shape[0])
            z = model.trace(x, "numpy")[key].output
            units_last = z if isinstance(layer, L.Linear) else np.moveaxis(z, 1, -1)
            rows = units_last.reshape(-1, w.shape[0])
            quantiles = np.linspace(0.3, 0.7, w.shape[0])
            layer.bias = -np.array([np.quantile(rows[:, j], q) for j, q in enumerate(quantiles)])
    return model


def mlp() -> npxai.Sequential:
    return balanced(npxai.Sequential(L.Linear(5, 7), L.ReLU(), L.Linear(7, 3)), data((5,)), 1)


def sequence() -> npxai.Sequential:
    """A Linear applied to each of 3 positions of (3, 4) inputs, ReLU, flatten, Linear."""
    model = npxai.Sequential(L.Linear(4, 6), L.ReLU(), L.Flatten(), L.Linear(18, 3))
    return balanced(model, data((3, 4)), 5)


def cnn() -> npxai.Sequential:
    """Conv - ReLU - max pool - a strided, dilated, grouped, padded conv - ReLU - flatten -
    Linear - ReLU - Linear, on (2, 6, 6) inputs."""
    return balanced(npxai.Sequential(
        L.Conv2d(2, 4, 3, padding=1), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(4, 4, 2, stride=2, padding=1, dilation=2, groups=2), L.ReLU(), L.Flatten(),
        L.Linear(16, 5), L.ReLU(), L.Linear(5, 3),
    ), data((2, 6, 6)), 2)  # fmt: skip


def expected_patterns(model, x: np.ndarray, estimator: str) -> dict[str, np.ndarray]:
    trace = model.trace(x, "numpy")
    return {
        key: paper_pattern(record.layer, record.input, record.output, estimator)
        for key, record in trace.items()
        if isinstance(record.layer, L.Linear | L.Conv2d)
    }


def mlp_backward(model, x, target, kernels) -> np.ndarray:
    """The walk written out: ``r = y_t e_t``, ``r <- r A2``, ReLU gate, ``r <- r A1``."""
    h = x @ model[0].weight.T.astype(np.float64) + model[0].bias
    y = np.maximum(h, 0) @ model[2].weight.T.astype(np.float64) + model[2].bias
    r = np.zeros_like(y)
    r[np.arange(len(x)), target] = y[np.arange(len(x)), target]
    return ((r @ kernels["2"]) * (h > 0)) @ kernels["0"]


def sequence_backward(model, x, target, kernels) -> np.ndarray:
    """As :func:`mlp_backward`, the first Linear's rows being the positions of every sample."""
    h = x @ model[0].weight.T.astype(np.float64) + model[0].bias
    y = np.maximum(h, 0).reshape(len(x), -1) @ model[3].weight.T.astype(np.float64)
    y += model[3].bias
    r = np.zeros_like(y)
    r[np.arange(len(x)), target] = y[np.arange(len(x)), target]
    return ((r @ kernels["3"]).reshape(h.shape) * (h > 0)) @ kernels["0"]


def cnn_backward(model, x, target, kernels) -> np.ndarray:
    """The walk written out with torch: the forward pass (for the gates), then the transposed
    maps with the kernels (autograd of ``conv2d`` with the kernel at the recorded input), the ReLU
    gates and the max-pooling switches (autograd of ``max_pool2d``)."""

    def t(a):
        return torch.tensor(np.asarray(a, dtype=np.float64))

    def transposed(f, at, r):
        at = at.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(at), at, r)
        return grad

    c1, c2, fc1, fc2 = model[0], model[3], model[6], model[8]
    xt = t(x)
    z1 = F.conv2d(xt, t(c1.weight), t(c1.bias), padding=1)
    p1 = F.max_pool2d(F.relu(z1), 2)
    z2 = F.conv2d(p1, t(c2.weight), t(c2.bias), stride=2, padding=1, dilation=2, groups=2)
    z3 = F.relu(z2).flatten(1) @ t(fc1.weight).T + t(fc1.bias)
    y = F.relu(z3) @ t(fc2.weight).T + t(fc2.bias)
    rows = torch.arange(len(x))
    r = torch.zeros_like(y)
    r[rows, target] = y[rows, target]
    r = (r @ t(kernels["8"])) * (z3 > 0)
    r = (r @ t(kernels["6"])).reshape(z2.shape) * (z2 > 0)
    a2 = t(kernels["3"])
    r = transposed(lambda v: F.conv2d(v, a2, stride=2, padding=1, dilation=2, groups=2), p1, r)
    r = transposed(lambda v: F.max_pool2d(v, 2), F.relu(z1), r) * (z1 > 0)
    return transposed(lambda v: F.conv2d(v, t(kernels["0"]), padding=1), xt, r).numpy()


NETS = {
    "mlp": (mlp, (5,), mlp_backward),
    "sequence": (sequence, (3, 4), sequence_backward),
    "cnn": (cnn, (2, 6, 6), cnn_backward),
}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("net", NETS)
def test_patterns_and_explanations_against_the_formulas(net, estimator):
    make, shape, backward = NETS[net]
    model, x = make(), data(shape)
    expected = expected_patterns(model, x, estimator)
    pattern_net = PatternNet(model, estimator=estimator, backend="numpy").fit(x, batch_size=10)
    fitted = pattern_net.patterns
    assert fitted.keys() == expected.keys()
    for key, pattern in expected.items():
        assert fitted[key].dtype == np.float64
        assert relative_error(fitted[key], pattern) < 1e-10, key
    target = np.arange(8) % 3
    signal = pattern_net(x[:8], target)
    assert signal.analyzer == "PatternNet" and signal.heatmap_preset == "sensitivity"
    by_hand = backward(model, x[:8], target, expected)
    assert np.abs(by_hand).reshape(8, -1).max(axis=1).min() > 0  # no sample explained by zeros
    assert relative_error(signal.attribution, by_hand) < 1e-10
    products = {key: model[int(key)].weight * a for key, a in expected.items()}
    attribution = PatternAttribution(model, estimator=estimator, backend="numpy").fit(x)
    explained = attribution(x[:8], target)
    assert explained.heatmap_preset == "attribution"
    by_hand = backward(model, x[:8], target, products)
    assert np.abs(by_hand).reshape(8, -1).max(axis=1).min() > 0
    assert relative_error(explained.attribution, by_hand) < 1e-10


def test_default_target_and_float32():
    model, x = cnn(), data((2, 6, 6))
    analyzer = PatternAttribution(model, backend="numpy").fit(x)
    explained = analyzer(x[:4])
    np.testing.assert_array_equal(explained.target, model(x[:4], "numpy").argmax(axis=1))
    single = analyzer(x[:4].astype(np.float32))
    assert single.attribution.dtype == np.float32
    assert relative_error(single.attribution, explained.attribution) < 1e-5
    # fitting float32 data runs the model in float64 on the same values
    refit = PatternAttribution(model, backend="numpy").fit(x.astype(np.float32))
    again = PatternAttribution(model, backend="numpy").fit(x.astype(np.float32).astype(np.float64))
    for key, pattern in refit.patterns.items():
        np.testing.assert_array_equal(pattern, again.patterns[key])


def test_a_unit_never_active_gets_a_zero_pattern():
    model, x = mlp(), data((5,))
    model[0].bias = np.where(np.arange(7) == 2, -100.0, model[0].bias).astype(np.float32)
    patterns = PatternNet(model, backend="numpy").fit(x).patterns
    np.testing.assert_array_equal(patterns["0"][2], 0.0)
    assert np.abs(patterns["0"][[0, 1, 3, 4, 5, 6]]).min(axis=1).all()


def test_other_layers_pass_the_signal_as_the_gradient(tmp_path):
    """With every pattern set to its weight, PatternNet is ``y_t`` times the gradient, and with
    every pattern 1, PatternAttribution is too: batch norm, average and max pooling, padding,
    flatten and dropout pass the signal as torch's autograd."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2, stride=1), torch.nn.ZeroPad2d(1), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Dropout(), torch.nn.Linear(12, 4), torch.nn.Tanh(),
        torch.nn.Linear(4, 3),
    ).double().eval()  # fmt: skip
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    model = npxai.from_torch(net)
    x = data((2, 6, 6), n=4)
    xt = torch.tensor(x, requires_grad=True)
    out = net(xt)
    target = out.argmax(dim=1)
    picked = out[torch.arange(4), target]
    (grad,) = torch.autograd.grad(picked.sum(), xt)
    expected = (grad * picked.detach()[:, None, None, None]).numpy()
    layers = {k: m for k, m in model.named_modules() if isinstance(m, L.Linear | L.Conv2d)}
    path = tmp_path / "weights_as_patterns.npz"
    for analyzer, value in ((PatternNet, lambda w: w), (PatternAttribution, np.ones_like)):
        patterns = {key: value(layer.weight.astype(np.float64)) for key, layer in layers.items()}
        np.savez(path, **patterns, **{ESTIMATOR_KEY: np.array("two_component")})
        explainer = analyzer(model, backend="numpy").load(path)
        assert relative_error(explainer(x).attribution, expected) < 1e-10


# --- streaming, files, backends ---------------------------------------------------------------


def test_fitting_in_batches_equals_fitting_at_once():
    model, x = cnn(), data((2, 6, 6))
    once = PatternNet(model, backend="numpy").fit(x, batch_size=len(x)).patterns
    in_sevens = PatternNet(model, backend="numpy").fit(x, batch_size=7).patterns
    uneven = iter([x[:1], torch.tensor(x[1:20]), x[20:]])
    from_iterable = PatternNet(model, backend="numpy").fit(uneven).patterns
    for key, pattern in once.items():
        assert relative_error(in_sevens[key], pattern) < 1e-12, key
        assert relative_error(from_iterable[key], pattern) < 1e-12, key


def test_save_and_load_round_trip(tmp_path):
    model, x = cnn(), data((2, 6, 6))
    fitted = PatternNet(model, estimator="linear", backend="numpy").fit(x)
    path = tmp_path / "patterns"
    fitted.save(path)
    assert path.exists()  # written where asked, no suffix added
    loaded = PatternNet(model, estimator="linear", backend="numpy").load(path)
    for key, pattern in fitted.patterns.items():
        np.testing.assert_array_equal(loaded.patterns[key], pattern)
    np.testing.assert_array_equal(loaded(x[:3]).attribution, fitted(x[:3]).attribution)
    attribution = PatternAttribution(model, estimator="linear", backend="numpy").load(path)
    refitted = PatternAttribution(model, estimator="linear", backend="numpy").fit(x)
    np.testing.assert_array_equal(attribution(x[:3]).attribution, refitted(x[:3]).attribution)


def test_load_errors(tmp_path):
    model, x = mlp(), data((5,))
    path = tmp_path / "p.npz"
    PatternNet(model, backend="numpy").fit(x).save(path)
    other = "fitted with estimator 'two_component'; this PatternNet uses 'linear'"
    with pytest.raises(PatternFileError, match=other):
        PatternNet(model, estimator="linear").load(path)
    wider = npxai.Sequential(L.Linear(5, 8), L.ReLU(), L.Linear(8, 3))
    shapes = r"'0': float64 array of shape \(7, 5\); the layer's weight is \(8, 5\)\n  '2': "
    with pytest.raises(PatternFileError, match=shapes + r".* \(3, 7\); .* \(3, 8\)"):
        PatternNet(wider).load(path)
    deeper = npxai.Sequential(L.Linear(5, 7), L.ReLU(), L.Linear(7, 3), L.ReLU(), L.Linear(3, 2))
    with pytest.raises(PatternFileError, match=r"missing key: '4' \(Linear\)"):
        PatternNet(deeper).load(path)
    stored = dict(np.load(path))
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in stored.items() if k != "2"})
    with pytest.raises(PatternFileError, match=r"1 problems\):\n  missing key: '2'"):
        PatternNet(model).load(partial)
    extra = tmp_path / "extra.npz"
    np.savez(extra, **stored, **{"9": np.zeros(3)})
    with pytest.raises(PatternFileError, match="unexpected key: '9'"):
        PatternNet(model).load(extra)
    unnamed = tmp_path / "unnamed.npz"
    np.savez(unnamed, **{k: v for k, v in stored.items() if k != ESTIMATOR_KEY})
    with pytest.raises(PatternFileError, match="no '__estimator__' entry"):
        PatternNet(model).load(unnamed)
    nonfinite = tmp_path / "nan.npz"
    np.savez(nonfinite, **{**stored, "0": np.full((7, 5), np.nan)})
    with pytest.raises(PatternFileError, match="'0': holds NaN or Inf"):
        PatternNet(model).load(nonfinite)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**stored, "0": np.array([print], dtype=object)})
    with pytest.raises(PatternFileError, match="not a readable .npz pattern file"):
        PatternNet(model).load(pickled)
    text, truncated, member, single = (tmp_path / name for name in ("t", "z", "m", "s.npy"))
    text.write_text("not a zip")
    truncated.write_bytes(path.read_bytes()[:100])
    with zipfile.ZipFile(member, "w") as archive:
        archive.writestr("0.txt", "not an array")
    np.save(single, np.zeros((7, 5)))
    for bad in (text, truncated, member, single):
        with pytest.raises(PatternFileError, match="not a readable .npz pattern file"):
            PatternNet(model).load(bad)
    with pytest.raises(MissingFileError, match="no such pattern file"):
        PatternNet(model).load(tmp_path / "absent.npz")


def test_explaining_or_saving_before_fit(tmp_path):
    analyzer = PatternAttribution(mlp())
    message = r"PatternAttribution has no patterns yet; call fit\(data\) or load\(path\) first"
    calls = (lambda: analyzer(data((5,))), lambda: analyzer.save(tmp_path / "p"))
    for call in (*calls, lambda: analyzer.patterns):
        with pytest.raises(NotFittedError, match=message):
            call()


@pytest.mark.parametrize("analyzer", [PatternNet, PatternAttribution])
def test_numba_agrees_with_numpy(analyzer):
    model, x = cnn(), data((2, 6, 6))
    reference = analyzer(model, backend="numpy").fit(x, batch_size=16)
    compiled = analyzer(model, backend="numba").fit(x, batch_size=16)
    for key, pattern in reference.patterns.items():
        assert relative_error(compiled.patterns[key], pattern) < 1e-12, key
    for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 1e-5)):
        expected = reference(x[:6].astype(dtype)).attribution
        actual = compiled(x[:6].astype(dtype)).attribution
        assert actual.dtype == dtype
        assert relative_error(actual, expected) < tolerance


def test_cuda_agrees_with_numpy(tmp_path):
    """Fitting and explaining on the cuda backend (the simulator unless NPXAI_TEST_CUDA=device);
    PatternAttribution explains with patterns fitted on the host."""
    x = data((1, 4, 4), n=6)
    layers = (L.Conv2d(1, 2, 3), L.ReLU(), L.MaxPool2d(2), L.Flatten(), L.Linear(2, 2))
    model = balanced(npxai.Sequential(*layers), x, 4)
    reference = PatternNet(model, backend="numpy").fit(x)
    device = PatternNet(model, backend="cuda").fit(x)
    for key, pattern in reference.patterns.items():
        assert relative_error(device.patterns[key], pattern) < 1e-10, key
    actual, expected = device(x[:2]).attribution, reference(x[:2]).attribution
    assert isinstance(actual, np.ndarray) and np.abs(expected).max() > 0
    assert relative_error(actual, expected) < 1e-10
    reference.save(tmp_path / "p.npz")
    host = PatternAttribution(model, backend="numpy").load(tmp_path / "p.npz")
    device = PatternAttribution(model, backend="cuda").load(tmp_path / "p.npz")
    assert relative_error(device(x[:2]).attribution, host(x[:2]).attribution) < 1e-10


# --- bad input --------------------------------------------------------------------------------


def test_constructor_errors():
    choices = "PatternNet: estimator must be one of 'two_component', 'linear', got 'relu'"
    with pytest.raises(ValueError, match=choices):
        PatternNet(mlp(), estimator="relu")
    norm = npxai.Sequential(L.Linear(4, 4), L.LayerNorm(4), L.Linear(4, 2))
    no_rule = r"PatternAttribution has no rule for layer '1' \(LayerNorm\)"
    with pytest.raises(UnsupportedLayerError, match=no_rule) as error:
        PatternAttribution(norm)
    assert (error.value.key, error.value.layer_type) == ("1", "LayerNorm")
    with pytest.raises(UnsupportedLayerError, match="without a trailing Softmax"):
        PatternNet(npxai.Sequential(L.Linear(4, 2), L.Softmax(dim=1)))
    with pytest.raises(ValueError, match="PatternNet: the model has no Linear or Conv2d layer"):
        PatternNet(npxai.Sequential(L.ReLU()))
    with pytest.raises(TypeError, match="an analyzer needs an npxai Module"):
        PatternNet("model")


def test_fit_and_call_errors():
    analyzer, x = PatternNet(mlp(), backend="numpy"), data((5,))
    with pytest.raises(
        ValueError, match="PatternNet.fit: batch_size must be a positive int, got 0"
    ):
        analyzer.fit(x, batch_size=0)
    with pytest.raises(ValueError, match="batch_size is for an array of inputs"):
        analyzer.fit(iter([x]), batch_size=4)
    with pytest.raises(TypeError, match="data must be an array .* got int"):
        analyzer.fit(3)
    with pytest.raises(ValueError, match="PatternNet.fit: data holds no batch"):
        analyzer.fit([])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"PatternNet.fit: batch 1 contains nan at index \(1, 1\)"):
        analyzer.fit([x[:2], bad[2:]])
    with pytest.raises(TypeError, match="PatternNet.fit: data must be a float32 or float64"):
        analyzer.fit(np.zeros((4, 5), dtype=np.int64))
    with pytest.raises(LayerInputError, match="expected input of shape"):
        analyzer.fit(data((6,)))
    analyzer.fit(x)
    with pytest.raises(LayerInputError, match="expected input of shape"):
        analyzer(data((6,)))
    with pytest.raises(ValueError, match="target 3 is out of range"):
        analyzer(x, 3)
    with pytest.raises(TypeError, match="PatternNet.attribute got argument.*baselines"):
        analyzer.attribute(x, 0, baselines=0)
