"""The graph-operation layers (Permute, Reshape, Mean, Hardtanh, LayerNorm, LayerNorm2d, MatMul,
ZeroPad2d, ConstantPad2d, Upsample): forward and VJP against torch autograd on hypothesis-drawn
tiny shapes, float64 to 1e-10 and float32 to 1e-5, on the numpy and numba backends; their
argument and input errors; their LRP kinds and steps."""

import numpy as np
import pytest
import torch
from conftest import TORCH_DTYPE, assert_close, both_kernel_builds, torch_forward_and_vjp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import npxai
from npxai import layers as L
from npxai.errors import BackendError, LayerInputError
from npxai.lrp import composites as C
from npxai.lrp import rules as R
from npxai.module import Record

dtypes = st.sampled_from([np.float64, np.float32])
FEW = settings(max_examples=20)
HOST = ("numpy", "numba")


def random_input(data, shape, dtype, label="x") -> np.ndarray:
    seed = data.draw(st.integers(0, 2**31), label=f"seed of {label}")
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def check(ours, theirs, x: np.ndarray, grad_scale=None) -> None:
    """``ours`` on each host backend against torch's ``theirs`` (a module or a function of one
    tensor; a module's state dict is loaded into ``ours``): output and input gradient, the
    gradient's error measured against ``grad_scale(g)`` where it cancels larger terms."""
    if isinstance(theirs, torch.nn.Module):
        theirs = theirs.to(TORCH_DTYPE[x.dtype.type]).eval()
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    y, g, grad_x = torch_forward_and_vjp(theirs, x)
    for backend in HOST:
        our_y = ours(x, backend=backend)
        assert our_y.dtype == x.dtype and our_y.flags.c_contiguous
        assert_close(our_y, y, x.dtype.type)
        our_grad = ours.vjp(x, our_y, g, backend=backend)
        assert our_grad.dtype == x.dtype and our_grad.shape == x.shape
        assert_close(our_grad, grad_x, x.dtype.type, grad_scale and grad_scale(g))


def lrp_step(layer, rule, x, backend="numpy", seed=1):
    """One LRP step of ``rule`` on ``layer`` at ``x`` for a random relevance: ``(R_out, R_in)``."""
    y = layer(x, backend=backend)
    r = np.random.default_rng(seed).standard_normal(y.shape)
    return r, npxai.lrp.step(Record("l", layer, x, y), rule, r, backend)


def affine_matrix(f, in_shape):
    """``(A, t)`` with ``f(x) = A x + t`` per sample for an affine torch function ``f``, from unit
    vectors (independent of npxai)."""
    n_in = int(np.prod(in_shape))
    t = f(torch.zeros((1, *in_shape), dtype=torch.float64)).reshape(-1)
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
    return (f(basis).reshape(n_in, -1) - t).T.numpy(), t.numpy()


def permutations(ndim: int):
    """Permutations of ``0 .. ndim - 1`` that keep axis 0 first."""
    return st.permutations(list(range(1, ndim))).map(lambda p: [0, *p])


# -- Permute ------------------------------------------------------------------------------------


@FEW
@given(data=st.data(), dtype=dtypes)
def test_permute(data, dtype):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=5), label="shape")
    dims = data.draw(permutations(len(shape)), label="dims")
    check(L.Permute(dims), lambda t: t.permute(dims), random_input(data, shape, dtype))


def test_permute_is_torchvisions_and_takes_negative_dims():
    from torchvision.ops import Permute

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    check(L.Permute([0, 2, 3, 1]), Permute([0, 2, 3, 1]), x)
    assert L.Permute([0, -2, -1, 1]).dims == (0, 2, 3, 1)
    assert repr(L.Permute((0, 2, 1))) == "Permute(dims=[0, 2, 1])"


def test_permute_refuses_what_is_not_a_permutation_keeping_the_batch_axis_first():
    with pytest.raises(ValueError, match=r"Permute: dims\[0\] must be 0 \(the batch axis"):
        L.Permute([1, 0, 2])
    for bad in ([0, 1, 1], [0, 3, 1], [0, 1.0], [], 2, [0, True]):
        with pytest.raises(ValueError, match="Permute: dims must be"):
            L.Permute(bad)
    with pytest.raises(LayerInputError, match=r"expected input of 3 axes for dims=\[0, 2, 1\]"):
        L.Permute([0, 2, 1])(np.ones((2, 3)))
    with pytest.raises(BackendError, match="Permute does not run on the cuda backend"):
        L.Permute([0, 2, 1]).forward(np.ones((1, 2, 3)), backend="cuda")


# -- Reshape ------------------------------------------------------------------------------------


@FEW
@given(data=st.data(), dtype=dtypes)
def test_reshape(data, dtype):
    sample = data.draw(st.lists(st.integers(1, 4), min_size=0, max_size=3), label="sample shape")
    size = int(np.prod(sample))
    new = data.draw(st.permutations(sample + [1]), label="new shape")
    if data.draw(st.booleans(), label="infer one"):
        new[data.draw(st.integers(0, len(new) - 1), label="where")] = -1
    batch = data.draw(st.integers(1, 3), label="batch")
    x = random_input(data, (batch, *sample), dtype)
    assert int(np.prod([n for n in new if n != -1])) in range(1, size + 1)
    check(L.Reshape(new), lambda t: t.reshape(batch, *new), x)


def test_reshape_refuses_bad_shapes_and_inputs_that_do_not_fit():
    for bad in ([-1, -1], [0, 2], [2, -2], [], "3", [2.0]):
        with pytest.raises(ValueError, match="Reshape: shape must"):
            L.Reshape(bad)
    with pytest.raises(LayerInputError, match=r"fits shape=\(4, -1\), got shape \(2, 6\)"):
        L.Reshape((4, -1))(np.ones((2, 6)))
    with pytest.raises(LayerInputError, match=r"fits shape=\(5,\), got shape \(2, 6\)"):
        L.Reshape((5,))(np.ones((2, 6)))
    assert L.Reshape((3, -1))(np.ones((2, 6))).shape == (2, 3, 2)


def test_reshape_runs_on_the_cuda_backend():
    from numba import cuda

    x = np.arange(12.0).reshape(2, 6)
    y = L.Reshape((3, 2))(cuda.to_device(x), backend="cuda")
    np.testing.assert_array_equal(y.copy_to_host(), x.reshape(2, 3, 2))


# -- LRP through the re-arranging layers --------------------------------------------------------


@pytest.mark.parametrize("backend", HOST)
def test_pass_rule_moves_each_relevance_back_through_permute_and_reshape(backend):
    """PassRule on Permute and Reshape: each output's relevance goes back to the input it holds;
    so LRP-0 of a bias-free linear model behind them is input times gradient."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 2))
    r, ours = lrp_step(L.Permute([0, 2, 3, 1]), R.PassRule(), x, backend)
    np.testing.assert_array_equal(ours, r.transpose(0, 3, 1, 2))
    npxai.manual_seed(0)
    model = npxai.Sequential(L.Permute([0, 3, 1, 2]), L.Reshape((-1,)), L.Linear(24, 3, False))
    lrp = npxai.LRP(model, C.Composite(), output_relevance="logit", backend=backend)
    lrp = lrp(x, target=1)
    ixg = npxai.InputTimesGradient(model, backend=backend)(x, target=1)
    assert C.default_rule(model[0]) == R.PassRule() == C.default_rule(model[1])
    assert_close(lrp.attribution, ixg.attribution, np.float64)
    for layer in (L.Flatten(), L.Identity(), L.Dropout(), L.ReLU()):  # unchanged: R_in = R_out
        r, ours = lrp_step(layer, R.PassRule(), x, backend)
        np.testing.assert_array_equal(ours, r.reshape(x.shape))


# -- Mean ---------------------------------------------------------------------------------------


@FEW
@given(data=st.data(), dtype=dtypes)
def test_mean(data, dtype):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label="shape")
    n = len(shape)
    axes = data.draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=n - 1, unique=True))
    dim = tuple(a - n if data.draw(st.booleans(), label="negative") else a for a in axes)
    dim = dim[0] if len(dim) == 1 and data.draw(st.booleans(), label="as int") else dim
    keepdim = data.draw(st.booleans(), label="keepdim")
    x = random_input(data, shape, dtype)
    check(L.Mean(dim, keepdim), lambda t: t.mean(dim, keepdim), x)


def test_mean_refuses_the_batch_axis_and_bad_dims():
    with pytest.raises(ValueError, match="Mean: dim must not hold the batch axis 0"):
        L.Mean((1, 0))
    for bad in ((), 1.0, [1, "2"], True, None):
        with pytest.raises(ValueError, match="Mean: dim must be an int or a tuple of ints"):
            L.Mean(bad)
    with pytest.raises(TypeError, match="Mean: keepdim must be True or False"):
        L.Mean(1, keepdim=1)
    with pytest.raises(LayerInputError, match=r"dim=3 is out of range for input of shape \(2, 3\)"):
        L.Mean(3)(np.ones((2, 3)))
    with pytest.raises(LayerInputError, match="names the batch axis 0 or one axis twice"):
        L.Mean(-2)(np.ones((2, 3)))
    with pytest.raises(LayerInputError, match="names the batch axis 0 or one axis twice"):
        L.Mean((1, -2))(np.ones((2, 3, 4)))
    with pytest.raises(BackendError, match="Mean does not run on the cuda backend"):
        L.Mean(1).forward(np.ones((2, 3)), backend="cuda")
    assert repr(L.Mean((2, 3), True)) == "Mean(dim=(2, 3), keepdim=True)"


# -- LRP on the fixed linear maps ---------------------------------------------------------------

#: (layer, the same map in torch, the input shape)
FIXED = {
    "mean": (L.Mean((2, -1)), lambda t: t.mean((2, -1)), (2, 3, 4, 2)),
    "mean-keepdim": (L.Mean(1, True), lambda t: t.mean(1, True), (2, 3, 4)),
    "zero-pad": (L.ZeroPad2d((1, 0, 2, 1)), torch.nn.ZeroPad2d((1, 0, 2, 1)), (2, 2, 3, 3)),
    "constant-pad": (L.ConstantPad2d(1, 0.5), torch.nn.ConstantPad2d(1, 0.5), (1, 2, 3, 2)),
    "nearest": (L.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2), (2, 2, 2, 3)),
    "bilinear": (L.Upsample((5, 4), mode="bilinear"), torch.nn.Upsample((5, 4), mode="bilinear"),
                 (1, 2, 3, 2)),
}  # fmt: skip


@pytest.mark.parametrize("backend", HOST)
@pytest.mark.parametrize("rule", [R.NormRule(), R.EpsilonRule(1e-3), R.ZeroRule()], ids=repr)
@pytest.mark.parametrize("name", list(FIXED))
def test_z_rules_on_fixed_maps_match_their_dense_matrix_formula(name, rule, backend):
    """``R_in = x * (A^T (R / stab(A x + t)))`` per sample, ``A``, ``t`` from torch (``t``: a
    constant pad's border value, whose outputs pass nothing back: its share is absorbed)."""
    layer, torch_map, shape = FIXED[name]
    assert rule.supports(layer) and C.default_rule(layer) == R.NormRule()
    x = np.random.default_rng(3).standard_normal(shape)
    r, ours = lrp_step(layer, rule, x, backend)
    a, t = affine_matrix(torch_map, shape[1:])
    for i in range(shape[0]):
        z = a @ x[i].ravel() + t
        den = z + rule.epsilon * np.where(z >= 0, 1.0, -1.0)
        s = np.divide(r[i].ravel(), den, out=np.zeros_like(den), where=den != 0)  # 0: passes 0
        assert_close(ours[i].ravel(), x[i].ravel() * (a.T @ s), np.float64)


# -- Hardtanh -----------------------------------------------------------------------------------


@FEW
@given(data=st.data(), dtype=dtypes)
def test_hardtanh_with_inputs_at_its_bounds(data, dtype):
    """torch's gradient is 0 at ``x == min_val`` and ``x == max_val`` exactly; so is npxai's (the
    bounds compared in the input's dtype: float32 ``0.1`` is not float64 ``0.1``)."""
    low = data.draw(st.sampled_from([-1.0, -0.5, 0.0, 0.1]), label="min_val")
    high = low + data.draw(st.sampled_from([0.3, 1.0, 2.5]), label="max_val - min_val")
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4), label="shape")
    x = random_input(data, shape, dtype) * 2
    x.flat[::3] = low
    x.flat[1::4] = high
    check(L.Hardtanh(low, high), torch.nn.Hardtanh(low, high), x)


def test_hardtanh_gradient_at_its_bounds_is_zero_as_torchs():
    x = torch.tensor([-1.0, 1.0, 0.5], dtype=torch.float64, requires_grad=True)
    torch.nn.functional.hardtanh(x).backward(torch.ones(3, dtype=torch.float64))
    assert x.grad.tolist() == [0.0, 0.0, 1.0]
    x, g = x.detach().numpy(), np.ones(3)
    for backend in HOST:
        assert L.Hardtanh().vjp(x, None, g, backend=backend).tolist() == [0.0, 0.0, 1.0]
    from numba import cuda

    ours = L.Hardtanh().vjp(cuda.to_device(x), None, cuda.to_device(g), backend="cuda")
    assert ours.copy_to_host().tolist() == [0.0, 0.0, 1.0]


def test_hardtanh_refuses_bad_bounds_and_is_an_activation_under_lrp():
    with pytest.raises(ValueError, match=r"Hardtanh: max_val \(-1.0\) must be greater than"):
        L.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="Hardtanh: min_val"):
        L.Hardtanh(float("nan"))
    with pytest.raises(ValueError, match="Hardtanh: max_val"):
        L.Hardtanh(0.0, "1")
    assert repr(L.Hardtanh(0, 6)) == "Hardtanh(min_val=0.0, max_val=6.0)"
    assert C.default_rule(L.Hardtanh()) == R.PassRule()
    assert R.rules_for(L.Hardtanh()) == ["GradientRule", "PassRule"]


# -- LayerNorm, LayerNorm2d ---------------------------------------------------------------------


def randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``module`` with standard-normal parameters (not torch's ones and zeros)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape))))
    return module


def assume_well_conditioned(x: np.ndarray, axes: tuple[int, ...]) -> None:
    """Rows whose spread is not tiny beside their values: where ``x - mean`` cancels (two nearly
    equal entries), float32 rounding is magnified by ``1 / sigma``, in torch as in npxai."""
    wide = x.astype(np.float64)
    assume(wide.std(axis=axes).min() > np.abs(wide).max() / 30)


def layer_norm_terms(theirs, x: np.ndarray, axes: tuple[int, ...], weight=None):
    """The size of the terms a layer norm's VJP ``(g - mean(g) - x_hat mean(g x_hat)) / sigma``
    cancels (near-total for two entries): ``max |g w| / sigma``."""
    if weight is None:
        weight = 1 if theirs.weight is None else theirs.weight.detach().numpy()
    inv_std = 1 / np.sqrt(x.astype(np.float64).var(axis=axes).min() + theirs.eps)
    return lambda g: float(np.abs(g * weight).max() * inv_std)


@FEW
@given(data=st.data(), dtype=dtypes)
def test_layer_norm(data, dtype):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label="shape")
    k = data.draw(st.integers(1, len(shape) - 1), label="normalised axes")
    normalized = tuple(shape[len(shape) - k :])
    affine, bias = data.draw(st.booleans(), label="affine"), data.draw(st.booleans(), label="bias")
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.5]), label="eps")
    args = (normalized[0] if k == 1 else normalized, eps, affine, bias)
    theirs = randomise(torch.nn.LayerNorm(*args), data.draw(st.integers(0, 99), label="seed"))
    x = random_input(data, shape, dtype) * 3 + 1
    assume_well_conditioned(x, tuple(range(-k, 0)))
    check(L.LayerNorm(*args), theirs, x, layer_norm_terms(theirs, x, tuple(range(-k, 0))))


@FEW
@given(data=st.data(), dtype=dtypes)
def test_layer_norm_2d_is_torchvisions(data, dtype):
    from torchvision.models.convnext import LayerNorm2d

    n, c, h, w = data.draw(st.tuples(*[st.integers(1, 4)] * 4), label="shape")
    theirs = randomise(LayerNorm2d(c, eps=1e-6), data.draw(st.integers(0, 99), label="seed"))
    x = random_input(data, (n, c, h, w), dtype) * 2 - 1
    assume_well_conditioned(x, (1,))
    weight = theirs.weight.detach().numpy()[:, None, None]
    check(L.LayerNorm2d(c), theirs, x, layer_norm_terms(theirs, x, (1,), weight))


@FEW
@given(data=st.data(), dtype=dtypes, fixed_std=st.booleans(), affine=st.booleans())
@both_kernel_builds
def test_the_compiled_layer_norm_is_the_reference(data, dtype, fixed_std, affine):
    from conftest import assert_same
    from npxai.kernels.cpu import norm as k_norm

    from npxai.reference import norm

    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label="shape")
    start = data.draw(st.integers(1, len(shape) - 1), label="start")
    stop = data.draw(st.integers(start + 1, len(shape)), label="stop")
    x = random_input(data, shape, dtype) * 2 + 1
    w = random_input(data, shape[start:stop], dtype, "w") if affine else None
    b = random_input(data, shape[start:stop], dtype, "b") if affine else None
    y = norm.layer_norm(x, w, b, 1e-5, start, stop)
    assert_same(k_norm.layer_norm(x, w, b, 1e-5, start, stop), y)
    g = random_input(data, shape, dtype, "g")
    expected = norm.layer_norm_vjp(g, x, w, 1e-5, start, stop, fixed_std)
    w_wide = 1 if w is None else w.reshape(w.shape + (1,) * (len(shape) - stop))
    inv_std = 1 / np.sqrt(x.astype(np.float64).var(axis=tuple(range(start, stop))).min() + 1e-5)
    terms = float(np.abs(g * w_wide).max() * inv_std)  # what (g - mean(g) - ...) / sigma cancels
    assert_same(k_norm.layer_norm_vjp(g, x, w, 1e-5, start, stop, fixed_std), expected, terms)


def test_layer_norms_refuse_bad_arguments_and_inputs():
    for bad in (0, (), (2, 0), 2.0, [3, "4"]):
        with pytest.raises(ValueError, match="LayerNorm: normalized_shape must be a positive int"):
            L.LayerNorm(bad)
    with pytest.raises(ValueError, match="LayerNorm: eps"):
        L.LayerNorm(3, eps=-1.0)
    with pytest.raises(TypeError, match="LayerNorm: bias must be True or False"):
        L.LayerNorm(3, bias=None)
    with pytest.raises(ValueError, match="LayerNorm2d: num_channels must be a positive int"):
        L.LayerNorm2d(0)
    with pytest.raises(LayerInputError, match=r"expected input of shape \(N, ..., 3, 4\), got"):
        L.LayerNorm((3, 4))(np.ones((2, 4, 3)))
    with pytest.raises(LayerInputError, match=r"expected input of shape \(N, ..., 4\), got"):
        L.LayerNorm(4)(np.ones(4))  # the batch axis is never normalised
    with pytest.raises(LayerInputError, match="expected 3 channels on axis 1"):
        L.LayerNorm2d(3)(np.ones((1, 2, 4, 4)))
    with pytest.raises(LayerInputError, match=r"expected input of shape \(N, C, H, W\)"):
        L.LayerNorm2d(3)(np.ones((1, 3, 4)))
    assert list(L.LayerNorm(3).state_dict()) == ["weight", "bias"]
    assert list(L.LayerNorm(3, bias=False).state_dict()) == ["weight"]
    assert list(L.LayerNorm(3, elementwise_affine=False).state_dict()) == []
    assert list(L.LayerNorm2d(3).state_dict()) == ["weight", "bias"]
    assert repr(L.LayerNorm2d(3)) == "LayerNorm2d(3, eps=1e-06)"


def layer_norm_matrix(x_row: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """The LN-rule's ``A_ji = w_j (delta_ij - 1/K) / sigma`` for one normalised row, by hand."""
    k = len(x_row)
    sigma = np.sqrt(x_row.var() + eps)
    return w[:, None] * (np.eye(k) - 1 / k) / sigma


@pytest.mark.parametrize("backend", HOST)
@pytest.mark.parametrize("epsilon", [0.0, 1e-2])
def test_layer_norm_rule_is_the_epsilon_rule_on_the_map_with_its_std_fixed(epsilon, backend):
    """``R_in = x * (A^T (R / stab(A x + b)))`` with ``A`` written out by hand, per row; on
    LayerNorm over two trailing axes and on LayerNorm2d over the channels."""
    rng = np.random.default_rng(5)
    rule = R.LayerNormRule(epsilon)
    ln = L.LayerNorm((2, 3))
    ln.load_state_dict({"weight": rng.standard_normal((2, 3)), "bias": rng.standard_normal((2, 3))})
    x = rng.standard_normal((2, 4, 2, 3)) + 0.5
    r, ours = lrp_step(ln, rule, x, backend)
    w, b = ln.weight.ravel(), ln.bias.ravel()
    for row, r_row, ours_row in zip(x.reshape(-1, 6), r.reshape(-1, 6), ours.reshape(-1, 6), strict=True):  # fmt: skip
        a = layer_norm_matrix(row, w, ln.eps)
        z = a @ row + b
        expected = row * (a.T @ (r_row / (z + epsilon * np.where(z >= 0, 1.0, -1.0))))
        assert_close(ours_row, expected, np.float64)
    ln2 = L.LayerNorm2d(3)
    ln2.load_state_dict({"weight": rng.standard_normal(3), "bias": rng.standard_normal(3)})
    x = rng.standard_normal((2, 3, 2, 2))
    r, ours = lrp_step(ln2, rule, x, backend)
    for n, i, j in np.ndindex(2, 2, 2):
        a = layer_norm_matrix(x[n, :, i, j], ln2.weight, ln2.eps)
        z = a @ x[n, :, i, j] + ln2.bias
        s = r[n, :, i, j] / (z + epsilon * np.where(z >= 0, 1.0, -1.0))
        assert_close(ours[n, :, i, j], x[n, :, i, j] * (a.T @ s), np.float64)


@FEW
@given(data=st.data(), dtype=dtypes)
def test_rms_norm(data, dtype):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label="shape")
    k = data.draw(st.integers(1, len(shape) - 1), label="normalised axes")
    normalized = tuple(shape[len(shape) - k :])
    affine = data.draw(st.booleans(), label="affine")
    eps = data.draw(st.sampled_from([None, 1e-5, 0.5]), label="eps")
    args = (normalized[0] if k == 1 else normalized, eps, affine)
    theirs = randomise(torch.nn.RMSNorm(*args), data.draw(st.integers(0, 99), label="seed"))
    x = random_input(data, shape, dtype) * 3 + 1
    weight = 1 if theirs.weight is None else theirs.weight.detach().numpy()
    axes = tuple(range(-k, 0))
    inv_rms = 1 / np.sqrt((x.astype(np.float64) ** 2).mean(axis=axes).min() + (eps or 0))
    # dL/dx = (g - x_hat mean(g x_hat)) / rms cancels terms of size |g w| / rms
    check(L.RMSNorm(*args), theirs, x, lambda g: float(np.abs(g * weight).max() * inv_rms))
    assert isinstance(npxai.from_torch(torch.nn.Sequential(theirs))[0], L.RMSNorm)


@pytest.mark.parametrize("backend", HOST)
def test_rms_norm_under_the_layer_norm_rule_is_the_identity_rule(backend):
    """With the root mean square held fixed, RMSNorm is the diagonal map ``w / rms``: the
    LN-rule with epsilon 0 passes each entry's relevance through unchanged."""
    rng = np.random.default_rng(7)
    rms = L.RMSNorm(5)
    rms.load_state_dict({"weight": rng.standard_normal(5)})
    x = rng.standard_normal((3, 4, 5))
    r, ours = lrp_step(rms, R.LayerNormRule(0.0), x, backend)
    np.testing.assert_allclose(ours, r, rtol=1e-12)
    r, ours = lrp_step(rms, R.LayerNormRule(0.1), x, backend)
    y = rms(x)
    np.testing.assert_allclose(ours, y * r / (y + 0.1 * np.where(y >= 0, 1, -1)), rtol=1e-12)
    assert isinstance(C.default_rule(rms), R.LayerNormRule)
    with pytest.raises(BackendError, match="RMSNorm does not run on the cuda backend"):
        rms.forward(x, "cuda")


@pytest.mark.parametrize("backend", HOST)
def test_layer_norm_rule_conserves_relevance_without_a_bias(backend):
    rng = np.random.default_rng(6)
    ln = L.LayerNorm(5, bias=False)
    ln.load_state_dict({"weight": rng.standard_normal(5)})
    x = rng.standard_normal((3, 4, 5))
    r, ours = lrp_step(ln, R.LayerNormRule(0.0), x, backend)
    np.testing.assert_allclose(ours.sum(axis=-1), r.sum(axis=-1), rtol=1e-10, atol=1e-12)
    biased = L.LayerNorm(5)
    biased.load_state_dict({"weight": ln.weight, "bias": rng.standard_normal(5)})
    r, ours = lrp_step(biased, R.LayerNormRule(0.0), x, backend)
    y = biased(x, backend="numpy")
    absorbed = (r / y * biased.bias).sum(axis=-1)  # the bias's share b_j s_j
    np.testing.assert_allclose(ours.sum(axis=-1) + absorbed, r.sum(axis=-1), rtol=1e-9)


def test_layer_norm_rule_is_the_default_and_runs_in_a_model():
    npxai.manual_seed(1)
    model = npxai.Sequential(L.Linear(4, 6), L.LayerNorm(6), L.GELU(), L.Linear(6, 2))
    assert C.default_rule(model[1]) == R.LayerNormRule()
    assert R.rules_for(L.LayerNorm2d(2)) == ["GradientRule", "LayerNormRule"]
    assert not R.LayerNormRule.supports(L.Linear(2, 2)) and not R.EpsilonRule.supports(model[1])
    x = np.random.default_rng(7).standard_normal((2, 4))
    for backend in HOST:
        e = npxai.LRP(model, C.Composite(), backend=backend)(x, target=0)
        assert np.isfinite(e.attribution).all()
    with pytest.raises(ValueError, match="LayerNormRule: epsilon"):
        R.LayerNormRule(-1.0)


def test_layer_norms_and_their_rule_run_on_the_cuda_backend():
    """(the device kernels against the reference: tests/test_cuda_elementwise.py)"""
    npxai.manual_seed(2)
    model = npxai.Sequential(
        L.Conv2d(2, 3, 3, padding=1), L.LayerNorm2d(3), L.ReLU(), L.Flatten(), L.LayerNorm(48),
        L.Linear(48, 2),
    )  # fmt: skip
    rng = np.random.default_rng(8)
    for key, value in model.state_dict().items():
        model.load_state_dict({**model.state_dict(), key: rng.standard_normal(value.shape)})
    x = rng.standard_normal((2, 2, 4, 4))
    on_host = npxai.LRP(model, C.Composite(), backend="numpy")(x, target=1)
    on_device = npxai.LRP(model, C.Composite(), backend="cuda")(x, target=1)
    assert_close(on_device.attribution, on_host.attribution, np.float64)
    assert_close(
        npxai.gradient(model, x, 1, backend="cuda"), npxai.gradient(model, x, 1), np.float64
    )


# -- MatMul -------------------------------------------------------------------------------------


@st.composite
def matmul_shapes(draw):
    """Two shapes ``(..., n, k)``, ``(..., k, m)`` whose leading axes broadcast (some 1, some
    missing)."""
    n, k, m = draw(st.tuples(*[st.integers(1, 4)] * 3), label="n, k, m")
    lead = draw(st.lists(st.integers(1, 3), max_size=2), label="leading")
    a_lead = [d if draw(st.booleans(), label="a keeps") else 1 for d in lead]
    b_lead = [d if draw(st.booleans(), label="b keeps") else 1 for d in lead]
    b_lead = b_lead[draw(st.integers(0, len(b_lead)), label="b drops") :]
    return (*a_lead, n, k), (*b_lead, k, m)


@FEW
@given(data=st.data(), dtype=dtypes, shapes=matmul_shapes(), swap=st.booleans())
def test_matmul(data, dtype, shapes, swap):
    sa, sb = shapes
    if swap:  # the broadcast factor first
        sa, sb = sb[:-2] + sa[-2:], sa[:-2] + sb[-2:]
    a, b = random_input(data, sa, dtype, "a"), random_input(data, sb, dtype, "b")
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    yt = torch.matmul(ta, tb)
    g = random_input(data, tuple(yt.shape), dtype, "g")
    yt.backward(torch.tensor(g))
    # the size of the summed terms: the same products and sums on |a|, |b|, |g|
    pa, pb = (torch.tensor(np.abs(v), requires_grad=True) for v in (a, b))
    py = torch.matmul(pa, pb)
    py.backward(torch.tensor(np.abs(g)))
    terms_y, terms_a, terms_b = (float(v.detach().max()) for v in (py, pa.grad, pb.grad))
    for backend in HOST:
        L.MatMul().check_input((a, b))  # (a layer's call takes one array; a Graph passes tuples)
        y = L.MatMul().forward((a, b), backend=backend)
        assert y.dtype == dtype
        assert_close(y, yt.detach().numpy(), dtype, terms_y)
        grad_a, grad_b = L.MatMul().vjp((a, b), y, g, backend=backend)
        assert grad_a.shape == a.shape and grad_b.shape == b.shape
        assert_close(grad_a, ta.grad.numpy(), dtype, terms_a)
        assert_close(grad_b, tb.grad.numpy(), dtype, terms_b)


def test_matmul_refuses_inputs_that_do_not_fit_the_cuda_backend_and_lrp():
    matmul = L.MatMul()
    with pytest.raises(LayerInputError, match="expected two inputs to multiply as matrices"):
        matmul.check_input(np.ones((2, 2)))
    with pytest.raises(LayerInputError, match=r"shapes \(..., n, k\) and \(..., k, m\), got"):
        matmul.check_input((np.ones((2, 3)), np.ones((2, 3))))
    with pytest.raises(LayerInputError, match="shapes"):
        matmul.check_input((np.ones(3), np.ones((3, 2))))
    with pytest.raises(LayerInputError, match="do not broadcast to one shape"):
        matmul.check_input((np.ones((2, 2, 3)), np.ones((3, 3, 2))))
    with pytest.raises(LayerInputError, match="must have one dtype"):
        matmul.check_input((np.ones((2, 3)), np.ones((3, 2), np.float32)))
    with pytest.raises(BackendError, match="MatMul does not run on the cuda backend"):
        matmul.forward((np.ones((2, 3)), np.ones((3, 2))), backend="cuda")
    model = npxai.Graph(
        {
            "t": (L.Permute([0, 2, 1]), ["input"]),
            "gram": (L.MatMul(), ["input", "t"]),
            "flat": (L.Flatten(), ["gram"]),
            "fc": (L.Linear(4, 2), ["flat"]),
        }
    )
    x = np.random.default_rng(9).standard_normal((2, 2, 3))
    assert model(x).shape == (2, 2)
    grad = npxai.gradient(model, x, 0)  # MatMul's VJP reaches both of its inputs
    t = torch.tensor(x, requires_grad=True)
    w = torch.tensor(model["fc"].weight.astype(np.float64))
    (torch.matmul(t, t.transpose(1, 2)).flatten(1) @ w.T)[:, 0].sum().backward()
    assert_close(grad, t.grad.numpy(), np.float64)
    analyzer = npxai.LRP(model)  # MatMul's default: AttnLRP's uniform rule
    assert analyzer.rules["gram"] == R.ProductRule("uniform")
    assert np.isfinite(analyzer.attribute(x, target=0)).all()


# -- ZeroPad2d, ConstantPad2d -------------------------------------------------------------------


@FEW
@given(data=st.data(), dtype=dtypes)
def test_pads(data, dtype):
    padding = data.draw(st.one_of(st.integers(0, 2), st.tuples(*[st.integers(0, 3)] * 4)))
    shape = data.draw(st.tuples(*[st.integers(1, 3)] * 4), label="shape")
    x = random_input(data, shape, dtype)
    check(L.ZeroPad2d(padding), torch.nn.ZeroPad2d(padding), x)
    value = data.draw(st.sampled_from([0.0, -1.5, 0.1]), label="value")
    check(L.ConstantPad2d(padding, value), torch.nn.ConstantPad2d(padding, value), x)


def test_pads_refuse_negative_padding_bad_values_and_other_inputs():
    for bad in (-1, (1, 2, 3), (0, 0, -1, 0), 1.0, (1, 1, 1, True)):
        with pytest.raises(
            ValueError, match=r"ZeroPad2d: padding must be an int >= 0 or a 4-tuple"
        ):
            L.ZeroPad2d(bad)
    with pytest.raises(ValueError, match="ConstantPad2d: value"):
        L.ConstantPad2d(1, float("inf"))
    with pytest.raises(LayerInputError, match=r"expected input of shape \(N, C, H, W\)"):
        L.ZeroPad2d(1)(np.ones((2, 3, 4)))
    with pytest.raises(BackendError, match="ConstantPad2d does not run on the cuda backend"):
        L.ConstantPad2d(1, 2.0).forward(np.ones((1, 1, 2, 2)), backend="cuda")
    assert repr(L.ZeroPad2d(2)) == "ZeroPad2d(padding=(2, 2, 2, 2))"
    assert (
        repr(L.ConstantPad2d((1, 2, 0, 3), 0.5)) == "ConstantPad2d(padding=(1, 2, 0, 3), value=0.5)"
    )


def test_a_constant_pads_border_absorbs_relevance_and_a_zero_pad_conserves():
    x = np.random.default_rng(10).standard_normal((1, 2, 3, 3))
    r, ours = lrp_step(L.ZeroPad2d(1), R.NormRule(), x)
    inner = r[:, :, 1:4, 1:4]
    assert_close(ours, inner * x / (x + 1e-6 * np.where(x >= 0, 1, -1)), np.float64)
    r, ours = lrp_step(L.ConstantPad2d(1, 3.0), R.ZeroRule(), x)
    np.testing.assert_allclose(ours, r[:, :, 1:4, 1:4], rtol=1e-12)  # the border's R is lost


# -- Upsample -----------------------------------------------------------------------------------


@settings(max_examples=30)
@given(data=st.data(), dtype=dtypes)
def test_upsample(data, dtype):
    mode = data.draw(st.sampled_from(["nearest", "bilinear"]), label="mode")
    align = (
        data.draw(st.sampled_from([None, False, True]), label="align")
        if mode != "nearest"
        else None
    )
    shape = data.draw(
        st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5))
    )
    if data.draw(st.booleans(), label="by size"):
        size = data.draw(
            st.one_of(st.integers(1, 9), st.tuples(st.integers(1, 9), st.integers(1, 9)))
        )
        args = {"size": size}
    else:
        factor = st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 1.3, 4.0])
        scale = data.draw(st.one_of(factor, st.tuples(factor, factor)), label="scale_factor")
        pair = scale if isinstance(scale, tuple) else (scale, scale)
        if min(int(n * s) for n, s in zip(shape[2:], pair, strict=True)) < 1:
            scale = 2.0
        args = {"scale_factor": scale}
    theirs = torch.nn.Upsample(**args, mode=mode, align_corners=align)
    check(L.Upsample(**args, mode=mode, align_corners=align), theirs, random_input(data, shape, dtype))  # fmt: skip


def test_upsample_nearest_index_rule_is_torchs():
    """``floor(j * scale)`` in float32, ``scale = 1 / scale_factor`` where one is given: sizes
    whose rule differs from ``floor(j * in / out)``."""
    x = np.arange(35.0).reshape(1, 1, 5, 7)
    for args in ({"scale_factor": 1.5}, {"scale_factor": (1.7, 2.9)}, {"size": (7, 3)},
                 {"scale_factor": 0.6}, {"size": (13, 11)}):  # fmt: skip
        expected = torch.nn.Upsample(**args)(torch.tensor(x)).numpy()
        np.testing.assert_array_equal(L.Upsample(**args)(x, backend="numpy"), expected)


def test_upsample_refuses_bad_arguments():
    with pytest.raises(ValueError, match="Upsample: give exactly one of size and scale_factor"):
        L.Upsample()
    with pytest.raises(ValueError, match="Upsample: give exactly one of size and scale_factor"):
        L.Upsample(2, 2.0)
    with pytest.raises(ValueError, match="Upsample: size must be an int >= 1"):
        L.Upsample(0)
    with pytest.raises(ValueError, match="Upsample: scale_factor must be"):
        L.Upsample(scale_factor=0.0)
    with pytest.raises(ValueError, match="Upsample: scale_factor must be"):
        L.Upsample(scale_factor=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="Upsample: mode must be 'nearest' or 'bilinear'"):
        L.Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="align_corners can only be set with mode='bilinear'"):
        L.Upsample(scale_factor=2, align_corners=False)
    with pytest.raises(TypeError, match="Upsample: align_corners must be True or False"):
        L.Upsample(scale_factor=2, mode="bilinear", align_corners=1)
    with pytest.raises(LayerInputError, match=r"gives an empty output \(0, 1\)"):
        L.Upsample(scale_factor=0.5)(np.ones((1, 1, 1, 2)))
    with pytest.raises(LayerInputError, match=r"expected input of shape \(N, C, H, W\)"):
        L.Upsample(scale_factor=2)(np.ones((1, 2, 2)))
    with pytest.raises(BackendError, match="Upsample does not run on the cuda backend"):
        L.Upsample(scale_factor=2).forward(np.ones((1, 1, 2, 2)), backend="cuda")
    assert (
        repr(L.Upsample((2, 3), mode="bilinear", align_corners=True))
        == "Upsample(size=(2, 3), mode='bilinear', align_corners=True)"
    )


@FEW
@given(data=st.data(), dtype=dtypes)
def test_slice_and_select_against_torch(data, dtype):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=2, max_size=4), label="shape"))
    dim = data.draw(st.integers(1, len(shape) - 1), label="dim")
    n = shape[dim]
    start = data.draw(st.integers(-n, n - 1), label="start")
    stop = data.draw(st.one_of(st.none(), st.integers(-n, n + 2)), label="stop")
    step = data.draw(st.integers(1, 3), label="step")
    x = random_input(data, shape, dtype)
    index = [slice(None)] * len(shape)
    index[dim] = slice(start, stop, step)
    assume(x[tuple(index)].size > 0)
    check(L.Slice(dim, start, stop, step), lambda t: t[tuple(index)], x)
    at = data.draw(st.integers(-n, n - 1), label="index")
    check(L.Select(dim, at), lambda t: t.select(dim, at), x)


def test_slice_and_select_pass_relevance_back_and_refuse_what_they_cannot():
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    for layer in (L.Slice(1, 1, None, 2), L.Select(-1, 0)):
        r, r_in = lrp_step(layer, R.PassRule(), x)
        np.testing.assert_allclose(r_in.reshape(2, -1).sum(1), r.reshape(2, -1).sum(1))
        assert npxai.LRP(npxai.Sequential(layer), C.EpsilonPlus()).rules["0"] == R.PassRule()
    with pytest.raises(
        LayerInputError, match="dim=0 must be an axis of the input other than the batch"
    ):
        L.Slice(0, 1)(x)
    with pytest.raises(LayerInputError, match="keeps nothing of an input of shape \\(2, 4, 3\\)"):
        L.Slice(1, 3, 1)(x)
    with pytest.raises(LayerInputError, match="index 3 is out of range for axis 2"):
        L.Select(2, 3)(x)
    with pytest.raises(ValueError, match="Slice: step must be >= 1, got 0"):
        L.Slice(1, step=0)
    with pytest.raises(ValueError, match="Select: index must be an int, got 1.5"):
        L.Select(1, 1.5)
    for layer in (L.Slice(1, 1), L.Select(1, 0)):
        with pytest.raises(BackendError, match="does not run on the cuda backend yet"):
            layer.forward(x, backend="cuda")
