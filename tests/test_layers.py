"""Every layer's forward pass and input VJP against torch autograd, on hypothesis-drawn shapes.

Each npxai layer is built with the same arguments as its torch twin and gets the twin's weights
through ``load_state_dict``; the reference maths is then compared with torch's to 1e-10 (float64)
and 1e-5 (float32) relative error.
"""

import numpy as np
import pytest
import torch
from conftest import TORCH_DTYPE, assert_close, torch_forward_and_vjp
from hypothesis import assume, given
from hypothesis import strategies as st

from npxai import layers
from npxai.reference.pool import pool_output_size

dtypes = st.sampled_from([np.float64, np.float32])


def check_layer(ours, theirs, x: np.ndarray) -> None:
    """Load torch's weights into ``ours`` and compare the reference's output and input gradient."""
    theirs = theirs.to(TORCH_DTYPE[x.dtype.type]).eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    y, g, grad_x = torch_forward_and_vjp(theirs, x)
    our_y = ours(x, backend="numpy")
    assert our_y.dtype == x.dtype
    # a dense layer's outputs can cancel to far below their terms |x_i w_ji|: measure the error
    # against the terms, as for softmax's VJP y * (g - <g, y>) against |y||g|
    y_scale = grad_scale = None
    if isinstance(ours, layers.Linear):
        w = np.abs(ours.weight.astype(np.float64))
        y_scale = (np.abs(x) @ w.T).max() + np.abs(ours.bias if ours.bias is not None else 0).max()
        grad_scale = (np.abs(g) @ w).max()
    if isinstance(ours, layers.Softmax):
        grad_scale = np.abs(y).max() * np.abs(g).max()
    assert_close(our_y, y, x.dtype.type, y_scale)
    our_grad = ours.vjp(x, our_y, g, backend="numpy")
    assert our_grad.dtype == x.dtype
    assert_close(our_grad, grad_x, x.dtype.type, grad_scale)


def random_input(data, shape, dtype) -> np.ndarray:
    seed = data.draw(st.integers(0, 2**31), label="seed")
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@given(data=st.data(), dtype=dtypes)
def test_conv2d(data, dtype):
    groups = data.draw(st.integers(1, 3), label="groups")
    cin = groups * data.draw(st.integers(1, 3), label="in per group")
    cout = groups * data.draw(st.integers(1, 3), label="out per group")
    kernel = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 3)), label="kernel")
    stride = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), label="stride")
    dilation = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), label="dilation")
    padding_choices = [st.tuples(st.integers(0, 2), st.integers(0, 2)), st.just("valid")]
    if stride == (1, 1):
        padding_choices.append(st.just("same"))
    padding = data.draw(st.one_of(padding_choices), label="padding")
    bias = data.draw(st.booleans(), label="bias")
    size = data.draw(st.tuples(st.integers(1, 9), st.integers(1, 9)), label="size")
    batch = data.draw(st.integers(1, 3), label="batch")
    args = (cin, cout, kernel, stride, padding, dilation, groups, bias)
    ours = layers.Conv2d(*args)
    pads = ours.explicit_padding()
    for n, k, d, p in zip(
        size, kernel, dilation, (pads[0] + pads[1], pads[2] + pads[3]), strict=True
    ):
        assume(n + p >= d * (k - 1) + 1)
    x = random_input(data, (batch, cin, *size), dtype)
    check_layer(ours, torch.nn.Conv2d(*args), x)


def test_conv2d_depthwise_and_same_padding_with_even_kernel():
    """Depthwise (groups == channels) and 'same' padding with an even total (asymmetric)."""
    x = np.random.default_rng(1).standard_normal((2, 4, 7, 6))
    check_layer(layers.Conv2d(4, 8, (4, 2), padding="same", groups=4),
                torch.nn.Conv2d(4, 8, (4, 2), padding="same", groups=4), x)  # fmt: skip


@given(data=st.data(), dtype=dtypes)
def test_linear(data, dtype):
    fin, fout = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    bias = data.draw(st.booleans())
    lead = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2), label="leading")
    x = random_input(data, (*lead, fin), dtype)
    check_layer(layers.Linear(fin, fout, bias), torch.nn.Linear(fin, fout, bias), x)


def pool_arguments(data, dilation_allowed: bool):
    kernel = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 3)), label="kernel")
    stride = data.draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = (
        data.draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), label="dilation")
        if dilation_allowed
        else (1, 1)
    )
    limit = [k // 2 for k in kernel]
    padding = data.draw(st.tuples(st.integers(0, limit[0]), st.integers(0, limit[1])))
    ceil_mode = data.draw(st.booleans(), label="ceil_mode")
    size = data.draw(st.tuples(st.integers(1, 10), st.integers(1, 10)), label="size")
    s = kernel if stride is None else stride
    for n, k, st_, p, d in zip(size, kernel, s, padding, dilation, strict=True):
        assume(pool_output_size(n, k, st_, p, d, ceil_mode) >= 1)
        assume(n + 2 * p >= d * (k - 1) + 1)
    return kernel, stride, padding, dilation, ceil_mode, size


@given(data=st.data(), dtype=dtypes)
def test_max_pool2d(data, dtype):
    kernel, stride, padding, dilation, ceil_mode, size = pool_arguments(data, True)
    x = random_input(data, (data.draw(st.integers(1, 3)), 2, *size), dtype)
    args = (kernel, stride, padding, dilation, False, ceil_mode)
    # With dilation, a window can fall wholly on padding; torch then outputs -inf, and so do we.
    assume(np.isfinite(layers.MaxPool2d(*args)(x, backend="numpy")).all())
    check_layer(layers.MaxPool2d(*args), torch.nn.MaxPool2d(*args), x)


def test_max_pool2d_ties_go_to_the_first_maximum():
    """After a ReLU many windows hold only zeros; the gradient must pick what torch picks."""
    x = np.maximum(np.random.default_rng(2).standard_normal((2, 3, 9, 9)), 0) * 0
    x[0, 0, 4, 4] = 1.0
    for args in [(2, 2), (3, 2, 1), (3, 1, 1, 2, False, True)]:
        check_layer(layers.MaxPool2d(*args), torch.nn.MaxPool2d(*args), x)


@given(data=st.data(), dtype=dtypes)
def test_avg_pool2d(data, dtype):
    kernel, stride, padding, _, ceil_mode, size = pool_arguments(data, False)
    count_include_pad = data.draw(st.booleans(), label="count_include_pad")
    divisor = data.draw(st.one_of(st.none(), st.integers(1, 5)), label="divisor_override")
    x = random_input(data, (data.draw(st.integers(1, 3)), 2, *size), dtype)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    check_layer(layers.AvgPool2d(*args), torch.nn.AvgPool2d(*args), x)


@given(data=st.data(), dtype=dtypes)
def test_adaptive_avg_pool2d(data, dtype):
    out = data.draw(
        st.one_of(
            st.integers(1, 5), st.tuples(st.one_of(st.none(), st.integers(1, 5)), st.integers(1, 5))
        )
    )
    size = data.draw(st.tuples(st.integers(1, 11), st.integers(1, 11)), label="size")
    x = random_input(data, (data.draw(st.integers(1, 3)), 3, *size), dtype)
    check_layer(layers.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), x)


@given(data=st.data(), dtype=dtypes)
def test_batch_norm(data, dtype):
    two_d = data.draw(st.booleans(), label="2d")
    c = data.draw(st.integers(1, 5), label="channels")
    affine = data.draw(st.booleans(), label="affine")
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.1]), label="eps")
    shape = (data.draw(st.integers(1, 3)), c) + (
        (4, 3) if two_d else data.draw(st.sampled_from([(), (5,)]))
    )
    name = "BatchNorm2d" if two_d else "BatchNorm1d"
    theirs = getattr(torch.nn, name)(c, eps=eps, affine=affine)
    rng = np.random.default_rng([data.draw(st.integers(0, 2**31), label="seed"), 1])
    with torch.no_grad():
        theirs.running_mean.copy_(torch.tensor(rng.standard_normal(c)))
        theirs.running_var.copy_(torch.tensor(rng.uniform(0.1, 3, c)))
        if affine:
            theirs.weight.copy_(torch.tensor(rng.standard_normal(c)))
            theirs.bias.copy_(torch.tensor(rng.standard_normal(c)))
    check_layer(
        getattr(layers, name)(c, eps=eps, affine=affine), theirs, random_input(data, shape, dtype)
    )


class ExactHardsigmoid(torch.nn.Module):
    """torch's Hardsigmoid, ``clamp(x + 3, 0, 6) / 6``, with an exact gradient: torch's own backward
    multiplies by the float32 constant ``1.0f / 6.0f`` in float64 too (relative error 3e-8,
    beyond the 1e-10 checked here); npxai's is ``1 / 6`` in the input's dtype."""

    def forward(self, x):
        return torch.clamp(x + 3, 0, 6) / 6


def test_torch_disagrees_with_itself_where_the_readme_says():
    """The torch behaviours npxai's conventions name (README, Conventions): Hardsigmoid's float64
    VJP is the float32 1/6; Hardswish's VJP at NaN is NaN in a float64 vectorised block (16
    entries) but the gradient alone; float32 GELU(+Inf) is NaN in a vectorised block, Inf alone."""

    def grad(f, values, dtype):
        x = torch.tensor(values, dtype=dtype, requires_grad=True)
        y = f(x)
        y.backward(torch.ones_like(y))
        return y.detach().numpy(), x.grad.numpy()

    _, g = grad(torch.nn.functional.hardsigmoid, [0.5], torch.float64)
    assert g[0] == float(np.float32(1 / 6)) and abs(g[0] * 6 - 1) > 2e-8
    nan16 = [0.0] * 15 + [float("nan")]
    assert np.isnan(grad(torch.nn.functional.hardswish, nan16, torch.float64)[1][-1])
    assert grad(torch.nn.functional.hardswish, [float("nan")], torch.float64)[1][0] == 1
    inf16 = [float("inf")] * 16
    assert np.isnan(grad(torch.nn.functional.gelu, inf16, torch.float32)[0][0])
    assert grad(torch.nn.functional.gelu, [float("inf")], torch.float32)[0][0] == np.inf


ACTIVATIONS = [
    (lambda: layers.ReLU(), lambda: torch.nn.ReLU()),
    (lambda: layers.ReLU6(), lambda: torch.nn.ReLU6()),
    (lambda: layers.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: layers.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: layers.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: layers.SiLU(), lambda: torch.nn.SiLU()),
    (lambda: layers.Hardsigmoid(), lambda: ExactHardsigmoid()),
    (lambda: layers.Hardswish(), lambda: torch.nn.Hardswish()),
    (lambda: layers.GELU(), lambda: torch.nn.GELU()),
    (lambda: layers.GELU("tanh"), lambda: torch.nn.GELU("tanh")),
    (lambda: layers.Hardtanh(), lambda: torch.nn.Hardtanh()),
    (lambda: layers.Hardtanh(0.0, 6.0), lambda: torch.nn.Hardtanh(0.0, 6.0)),  # at the bounds
    (lambda: layers.Softmax(1), lambda: torch.nn.Softmax(1)),
    (lambda: layers.Softmax(-1), lambda: torch.nn.Softmax(-1)),
    (lambda: layers.Flatten(), lambda: torch.nn.Flatten()),
    (lambda: layers.Flatten(0, 2), lambda: torch.nn.Flatten(0, 2)),
    (lambda: layers.Dropout(0.3), lambda: torch.nn.Dropout(0.3)),
    (lambda: layers.Identity(), lambda: torch.nn.Identity()),
]


@pytest.mark.parametrize("pair", ACTIVATIONS, ids=lambda p: type(p[0]()).__name__)
@given(data=st.data(), dtype=dtypes)
def test_parameter_free_layers(pair, data, dtype):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=3, max_size=4), label="shape")
    x = random_input(data, tuple(shape), dtype) * 4
    x.flat[::3] = 0  # the kinks: ReLU'(0), ReLU6'(0), LeakyReLU'(0)
    x.flat[1::7] = 6  # and ReLU6'(6)
    check_layer(pair[0](), pair[1](), x)


def test_sigmoid_does_not_overflow():
    x = np.array([[-800.0, -30.0, 0.0, 30.0, 800.0]])
    with np.errstate(over="raise"):
        y = layers.Sigmoid()(x, backend="numpy")
    assert_close(y, torch.sigmoid(torch.tensor(x)).numpy(), np.float64)
