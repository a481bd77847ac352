"""Every compiled CPU kernel against the NumPy reference, on hypothesis-drawn shapes, strides,
padding, dilation, groups, batch sizes (1 included) and dtypes: float64 to 1e-12 and float32 to
1e-5 relative error (max abs error over max abs value). With NaN and Inf planted in the input, the
pools and activations of both against torch: NaN propagates, and the gradient goes where torch's
goes."""

import math
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import KERNEL_TOLERANCE, TORCH_DTYPE, assert_same, both_kernel_builds, draw_array
from hypothesis import assume, given
from hypothesis import strategies as st
from npxai.kernels.cpu import activation as k_activation
from npxai.kernels.cpu import conv as k_conv
from npxai.kernels.cpu import linear as k_linear
from npxai.kernels.cpu import norm as k_norm
from npxai.kernels.cpu import pool as k_pool
from npxai.kernels.cpu import winograd as k_winograd

from npxai.reference import activation, conv, linear, norm, pool

dtypes = st.sampled_from([np.float64, np.float32])


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]), label="groups")
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = draw(st.tuples(st.integers(1, 4), st.integers(1, 3)), label="kernel")
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), label="stride")
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), label="dilation")
    padding = draw(st.tuples(*[st.integers(0, 2)] * 4), label="padding (t, b, l, r)")
    size = draw(st.tuples(st.integers(1, 9), st.integers(1, 9)), label="size")
    batch = draw(st.integers(1, 4), label="batch")
    out = conv.conv2d_output_size(size, kernel, stride, padding, dilation)
    assume(min(out) >= 1)
    return groups, cg * groups, og * groups, kernel, stride, padding, dilation, size, batch


@given(case=conv_case(), bias=st.booleans(), dtype=dtypes, data=st.data())
@both_kernel_builds
def test_conv2d_and_its_vjp(case, bias, dtype, data):
    groups, c, o, kernel, stride, padding, dilation, size, batch = case
    x = draw_array(data, (batch, c, *size), dtype)
    w = draw_array(data, (o, c // groups, *kernel), dtype, "w")
    b = draw_array(data, (o,), dtype, "b") if bias else None
    args = (stride, padding, dilation, groups)
    y = conv.conv2d(x, w, b, *args)
    channels_last = data.draw(st.sampled_from([-1, 2**62]), label="DEPTHWISE_CHANNELS_LAST_MAX")
    with mock.patch.object(k_conv, "DEPTHWISE_CHANNELS_LAST_MAX", channels_last):  # both paths
        assert_same(k_conv.conv2d(x, w, b, *args), y)
    g = draw_array(data, y.shape, dtype, "g")
    flipped_from = data.draw(st.sampled_from([0, 2**62]), label="FLIPPED_MIN_SIZE")
    with mock.patch.object(k_conv, "FLIPPED_MIN_SIZE", flipped_from):  # both stride-1 paths
        gx = k_conv.conv2d_vjp(g, w, size, *args)
    assert_same(gx, conv.conv2d_vjp(g, w, size, *args))


@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 5),
    multiplier=st.integers(1, 2),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.integers(1, 3),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.tuples(*[st.integers(0, 3)] * 4),
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    channels_last=st.sampled_from([-1, 2**62]),
    bias=st.booleans(),
    dtype=dtypes,
    data=st.data(),
)
@both_kernel_builds
def test_depthwise_conv2d_and_its_vjp(
    batch, channels, multiplier, kernel, stride, dilation, padding, size, channels_last, bias,
    dtype, data,
):  # fmt: skip
    """Depthwise convolutions (one input channel per group, ``multiplier`` outputs each; the
    phase-split plane kernel for equal strides, channels-last on small planes) and their input
    gradients (``dL/dy`` spread by the stride, flipped kernel), against the reference."""
    out = conv.conv2d_output_size(size, kernel, (stride, stride), padding, dilation)
    assume(min(out) >= 1)
    c, o = channels, channels * multiplier
    x = draw_array(data, (batch, c, *size), dtype)
    w = draw_array(data, (o, 1, *kernel), dtype, "w")
    b = draw_array(data, (o,), dtype, "b") if bias else None
    g = draw_array(data, (batch, o, *out), dtype, "g")
    args = ((stride, stride), padding, dilation, c)
    with mock.patch.object(k_conv, "DEPTHWISE_CHANNELS_LAST_MAX", channels_last):
        assert_same(k_conv.conv2d(x, w, b, *args), conv.conv2d(x, w, b, *args))
        assert_same(k_conv.conv2d_vjp(g, w, size, *args), conv.conv2d_vjp(g, w, size, *args))


@given(
    batch=st.integers(1, 3),
    channels=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    padding=st.tuples(*[st.integers(0, 2)] * 4),
    chunk=st.sampled_from([1, 2**23]),
    bias=st.booleans(),
    dtype=dtypes,
    data=st.data(),
)
@both_kernel_builds
def test_winograd_conv2d_and_its_vjp(batch, channels, size, padding, chunk, bias, dtype, data):
    """3x3 stride-1 convolutions through Winograd's F(2x2, 3x3) (its thresholds lowered to reach
    it with small shapes; odd sizes cut the last tile, ``chunk=1``: one sample per pass), and the
    input gradient, a 3x3 stride-1 convolution with the flipped kernel (made in the weight
    transform): against the reference's direct sums."""
    c, o = channels
    out = conv.conv2d_output_size(size, (3, 3), (1, 1), padding, (1, 1))
    assume(min(out) >= 1)
    x = draw_array(data, (batch, c, *size), dtype)
    w = draw_array(data, (o, c, 3, 3), dtype, "w")
    b = draw_array(data, (o,), dtype, "b") if bias else None
    g = draw_array(data, (batch, o, *out), dtype, "g")
    args = ((1, 1), padding, (1, 1), 1)
    calls = mock.Mock(wraps=k_winograd.conv3x3)
    with (
        mock.patch.multiple(k_conv, WINOGRAD_MIN_CHANNELS=0, WINOGRAD_MIN_TILES=0),
        mock.patch.object(k_winograd, "CHUNK_ELEMENTS", chunk),
        mock.patch.object(k_winograd, "conv3x3", calls),
    ):
        assert_same(k_conv.conv2d(x, w, b, *args), conv.conv2d(x, w, b, *args))
        assert calls.call_count == 1
        gx = k_conv.conv2d_vjp(g, w, size, *args)
    assert_same(gx, conv.conv2d_vjp(g, w, size, *args))
    assert calls.call_count == 2  # the input gradient: Winograd's with the flipped kernel


@pytest.mark.parametrize("chunk", [1, 40, 200])
def test_conv2d_chunks_of_several_samples(monkeypatch, chunk):
    """Batches split into chunks (some partial) give what one sample at a time gives."""
    monkeypatch.setattr(k_conv, "CHUNK_ELEMENTS", chunk)
    rng = np.random.default_rng(0)
    for kernel, stride, padding in [((3, 3), (1, 1), (1, 1, 1, 1)), ((1, 1), (1, 1), (0, 0, 0, 0))]:
        x = rng.standard_normal((7, 3, 5, 4))
        w = rng.standard_normal((4, 3, *kernel))
        b = rng.standard_normal(4)
        args = (stride, padding, (1, 1), 1)
        y = conv.conv2d(x, w, b, *args)
        assert_same(k_conv.conv2d(x, w, b, *args), y)
        g = rng.standard_normal(y.shape)
        assert_same(k_conv.conv2d_vjp(g, w, (5, 4), *args), conv.conv2d_vjp(g, w, (5, 4), *args))


@given(data=st.data(), dtype=dtypes, bias=st.booleans())
@both_kernel_builds
def test_linear_and_its_vjp(data, dtype, bias):
    fin, fout = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    lead = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=2), label="leading")
    x = draw_array(data, (*lead, fin), dtype)
    w = draw_array(data, (fout, fin), dtype, "w")
    b = draw_array(data, (fout,), dtype, "b") if bias else None
    y = linear.linear(x, w, b)
    assert_same(k_linear.linear(x, w, b), y)
    g = draw_array(data, y.shape, dtype, "g")
    assert_same(k_linear.linear_vjp(g, w), linear.linear_vjp(g, w))


@st.composite
def pool_case(draw, dilation_allowed):
    kernel = draw(st.tuples(st.integers(1, 4), st.integers(1, 3)), label="kernel")
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), label="stride")
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2))) if dilation_allowed else (1, 1)
    padding = draw(st.tuples(st.integers(0, kernel[0] // 2), st.integers(0, kernel[1] // 2)))
    ceil_mode = draw(st.booleans(), label="ceil_mode")
    size = draw(st.tuples(st.integers(1, 9), st.integers(1, 9)), label="size")
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True):
        assume(pool.pool_output_size(n, k, s, p, d, ceil_mode) >= 1)
    return (
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
        size,
        draw(st.integers(1, 3), label="batch"),
    )


@given(case=pool_case(True), dtype=dtypes, data=st.data(), ties=st.booleans())
@both_kernel_builds
def test_max_pool2d_and_its_vjp(case, dtype, data, ties):
    kernel, stride, padding, dilation, ceil_mode, size, batch = case
    x = draw_array(data, (batch, 2, *size), dtype)
    if ties:  # after a ReLU: many equal zeros, where the first maximum must win
        x = np.maximum(x, 0)
    args = (kernel, stride, padding, dilation, ceil_mode)
    y, argmax = pool.max_pool2d(x, *args, return_indices=True)
    ky, kargmax = k_pool.max_pool2d(x, *args, return_indices=True)
    np.testing.assert_array_equal(ky, y)
    np.testing.assert_array_equal(kargmax, argmax)
    np.testing.assert_array_equal(k_pool.max_pool2d(x, *args), y)  # without the arg-max
    g = draw_array(data, y.shape, dtype, "g")
    assert_same(k_pool.max_pool2d_vjp(g, x, *args), pool.max_pool2d_vjp(g, x, *args))


@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    ceil_mode=st.booleans(),
    ties=st.booleans(),
    dtype=dtypes,
    data=st.data(),
)
@both_kernel_builds
def test_max_pool2d_2x2_and_its_vjp(size, ceil_mode, ties, dtype, data):
    """Kernel 2, stride 2 (its own kernels, unless ceil_mode cuts a window): odd sizes leave a
    last row or column out of every window; after a ReLU, ties go to the first maximum."""
    args = ((2, 2), (2, 2), (0, 0), (1, 1), ceil_mode)
    assume(min(size) >= 2)
    x = draw_array(data, (2, 3, *size), dtype)
    if ties:
        x = np.maximum(x, 0)
    y, argmax = pool.max_pool2d(x, *args, return_indices=True)
    ky, kargmax = k_pool.max_pool2d(x, *args, return_indices=True)
    np.testing.assert_array_equal(ky, y)
    np.testing.assert_array_equal(kargmax, argmax)
    g = draw_array(data, y.shape, dtype, "g")
    np.testing.assert_array_equal(
        k_pool.max_pool2d_vjp(g, x, *args), pool.max_pool2d_vjp(g, x, *args)
    )


@given(case=pool_case(False), dtype=dtypes, data=st.data(), include=st.booleans(),
       divisor=st.one_of(st.none(), st.integers(1, 5)))  # fmt: skip
@both_kernel_builds
def test_avg_pool2d_and_its_vjp(case, dtype, data, include, divisor):
    kernel, stride, padding, _, ceil_mode, size, batch = case
    x = draw_array(data, (batch, 2, *size), dtype)
    y = pool.avg_pool2d(x, kernel, stride, padding, ceil_mode, include, divisor)
    assert_same(k_pool.avg_pool2d(x, kernel, stride, padding, ceil_mode, include, divisor), y)
    g = draw_array(data, y.shape, dtype, "g")
    args = (size, kernel, stride, padding, include, divisor)
    assert_same(k_pool.avg_pool2d_vjp(g, *args), pool.avg_pool2d_vjp(g, *args))


@given(data=st.data(), dtype=dtypes)
@both_kernel_builds
def test_adaptive_avg_pool2d_and_its_vjp(data, dtype):
    size = data.draw(st.tuples(st.integers(1, 11), st.integers(1, 11)), label="size")
    out = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)), label="output size")
    x = draw_array(data, (data.draw(st.integers(1, 3)), 2, *size), dtype)
    y = pool.adaptive_avg_pool2d(x, out)
    assert_same(k_pool.adaptive_avg_pool2d(x, out), y)
    g = draw_array(data, y.shape, dtype, "g")
    assert_same(k_pool.adaptive_avg_pool2d_vjp(g, size), pool.adaptive_avg_pool2d_vjp(g, size))


@given(data=st.data(), dtype=dtypes, affine=st.booleans())
@both_kernel_builds
def test_batch_norm_and_its_vjp(data, dtype, affine):
    c = data.draw(st.integers(1, 4), label="channels")
    tail = data.draw(st.sampled_from([(), (5,), (3, 4)]), label="trailing shape")
    x = draw_array(data, (data.draw(st.integers(1, 3)), c, *tail), dtype)
    mean = draw_array(data, (c,), dtype, "mean")
    var = np.abs(draw_array(data, (c,), dtype, "var")) + 0.1
    weight = draw_array(data, (c,), dtype, "weight") if affine else None
    bias = draw_array(data, (c,), dtype, "bias") if affine else None
    assert_same(
        k_norm.batch_norm(x, mean, var, weight, bias, 1e-5),
        norm.batch_norm(x, mean, var, weight, bias, 1e-5),
    )
    g = draw_array(data, x.shape, dtype, "g")
    assert_same(
        k_norm.batch_norm_vjp(g, var, weight, 1e-5), norm.batch_norm_vjp(g, var, weight, 1e-5)
    )


ELEMENTWISE = [
    ("relu", (), "x"), ("relu6", (), "x"), ("leaky_relu", (0.1,), "x"),
    ("tanh", (), "y"), ("sigmoid", (), "y"), ("silu", (), "x"), ("hardsigmoid", (), "x"),
    ("hardswish", (), "x"), ("gelu", ("none",), "x"), ("gelu", ("tanh",), "x"),
    ("hardtanh", (0.0, 6.0), "x"), ("hardtanh", (-1.0, 1.0), "x"),
]  # fmt: skip


@pytest.mark.parametrize("name, extra, vjp_uses", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@given(data=st.data(), dtype=dtypes)
@both_kernel_builds
def test_elementwise_activations_and_their_vjps(name, extra, vjp_uses, data, dtype):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4), label="shape"))
    x = draw_array(data, shape, dtype) * 4
    x.flat[::3] = 0
    x.flat[1::5] = 6
    y = getattr(activation, name)(x, *extra)
    assert_same(getattr(k_activation, name)(x, *extra), y)
    g = draw_array(data, shape, dtype, "g")
    point = x if vjp_uses == "x" else y
    expected = getattr(activation, name + "_vjp")(g, point, *extra)
    assert_same(getattr(k_activation, name + "_vjp")(g, point, *extra), expected)


@given(data=st.data(), dtype=dtypes)
@both_kernel_builds
def test_softmax_and_its_vjp(data, dtype):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4), label="shape"))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    x = draw_array(data, shape, dtype) * 3
    y = activation.softmax(x, dim)
    assert_same(k_activation.softmax(x, dim), y)
    g = draw_array(data, shape, dtype, "g")
    terms = float(np.abs(y).max() * np.abs(g).max())  # y * (g - <g, y>) cancels such terms
    assert_same(k_activation.softmax_vjp(g, y, dim), activation.softmax_vjp(g, y, dim), terms)


def test_non_contiguous_inputs_are_handled():
    x = np.random.default_rng(0).standard_normal((3, 4, 6, 5)).transpose(0, 1, 3, 2)
    w = np.random.default_rng(1).standard_normal((2, 4, 3, 3))
    args = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert_same(k_conv.conv2d(x, w, None, *args), conv.conv2d(x, w, None, *args))
    assert_same(k_activation.relu(x), activation.relu(x))
    assert_same(k_pool.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False),
                pool.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False))  # fmt: skip


def plant_nonfinite(data, x: np.ndarray) -> np.ndarray:
    """``x`` with one to four hypothesis-drawn entries set to NaN (and maybe one to +-Inf)."""
    x = x.copy()
    spots = data.draw(st.lists(st.integers(0, x.size - 1), min_size=1, max_size=4), label="NaNs")
    x.flat[spots] = np.nan
    infinity = data.draw(st.sampled_from([None, np.inf, -np.inf]), label="Inf")
    if infinity is not None:
        x.flat[data.draw(st.integers(0, x.size - 1), label="Inf at")] = infinity
    return x


def cotangent(data, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A drawn ``dL/dy``, with NaN planted in it or not (a NaN gradient reaches only the
    positions it flows to, as in torch)."""
    g = draw_array(data, shape, dtype, "g")
    return plant_nonfinite(data, g) if data.draw(st.booleans(), label="NaN in g") else g


def assert_nan_close(actual: np.ndarray, expected: np.ndarray, scale: float | None = None) -> None:
    """Same shape and dtype, NaN and +-Inf exactly where ``expected`` has them, the finite values
    within the kernel tolerance relative to ``scale`` (default: the largest finite ``|expected|``;
    give the terms' size where a result sums them)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite], expected[~finite])  # NaN equals NaN here
    a, e = actual[finite].astype(np.float64), expected[finite].astype(np.float64)
    if scale is None:
        scale = float(np.abs(e).max(initial=0.0))
    error = float(np.abs(a - e).max(initial=0.0)) / max(scale, 1e-300)
    assert error <= KERNEL_TOLERANCE[expected.dtype.type], f"relative error {error:.2e}"


def window_on_padding_only(size, out, kernel, stride, padding, dilation) -> bool:
    """Whether some pooling window (possible with dilation) has no element in the input."""
    return any(
        not any(0 <= o * s - p + i * d < n for i in range(k))
        for n, m, k, s, p, d in zip(size, out, kernel, stride, padding, dilation, strict=True)
        for o in range(m)
    )


def torch_max_pool(x, g, kernel, stride, padding, dilation, ceil_mode):
    """torch's max pool of ``x``: values, indices and the input gradient for the cotangent ``g``
    (never for a window wholly on padding: see :func:`window_on_padding_only`)."""
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    yt.backward(torch.tensor(g))
    return yt.detach().numpy(), it.numpy(), xt.grad.numpy()


@given(case=pool_case(True), dtype=dtypes, data=st.data(), ties=st.booleans())
@both_kernel_builds
def test_max_pool2d_propagates_nan_as_torch(case, dtype, data, ties):
    """A window holding a NaN pools to NaN, its arg-max (and gradient) at the window's last NaN:
    torch's ``val > max or isnan(val)``, starting from the window's first element (a window of
    ``-inf`` picks that one); the reference and the numba kernels agree with torch."""
    kernel, stride, padding, dilation, ceil_mode, size, batch = case
    x = draw_array(data, (batch, 2, *size), dtype)
    x = plant_nonfinite(data, np.maximum(x, 0) if ties else x)
    args = (kernel, stride, padding, dilation, ceil_mode)
    out = pool.max_pool2d(x, *args).shape
    # torch's index is its own there, and its backward then writes outside the gradient (a heap
    # corruption that aborted the test run later, in another torch call): torch is not called
    assume(not window_on_padding_only(size, out[2:], *args[:4]))
    g = cotangent(data, out, dtype)
    ty, ti, tgrad = torch_max_pool(x, g, *args)
    for ops in (pool, k_pool):
        y, argmax = ops.max_pool2d(x, *args, return_indices=True)
        np.testing.assert_array_equal(y, ty)  # NaN where torch has NaN, the same values elsewhere
        np.testing.assert_array_equal(ops.max_pool2d(x, *args), ty)
        np.testing.assert_array_equal(argmax, ti)
        assert_nan_close(ops.max_pool2d_vjp(g, x, *args), tgrad)


@given(size=st.tuples(st.integers(2, 9), st.integers(2, 9)), ceil_mode=st.booleans(),
       dtype=dtypes, data=st.data())  # fmt: skip
@both_kernel_builds
def test_max_pool2d_2x2_propagates_nan_as_torch(size, ceil_mode, dtype, data):
    """The 2x2 stride-2 kernels of their own (VGG's pools) follow torch's NaN rule too."""
    args = ((2, 2), (2, 2), (0, 0), (1, 1), ceil_mode)
    x = plant_nonfinite(data, draw_array(data, (2, 3, *size), dtype))
    g = cotangent(data, pool.max_pool2d(x, *args).shape, dtype)
    ty, ti, tgrad = torch_max_pool(x, g, *args)
    for ops in (pool, k_pool):
        y, argmax = ops.max_pool2d(x, *args, return_indices=True)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_array_equal(argmax, ti)
        np.testing.assert_array_equal(ops.max_pool2d_vjp(g, x, *args), tgrad)


def test_max_pool2d_of_the_issue():
    """``[1, nan, 3, 0]`` pools to NaN (torch's value), the gradient going to the NaN; a window
    of ``-inf`` picks its first element, as torch (its values and indices written out here)."""
    x = np.array([[[[1, np.nan, 3, 0]]]])
    for ops in (pool, k_pool):
        for kernel in ((1, 4), (1, 2)):
            y, _ = ops.max_pool2d(x, kernel, kernel, (0, 0), (1, 1), False, return_indices=True)
            assert np.isnan(y[0, 0, 0, 0]), (ops.__name__, kernel)
        grad = ops.max_pool2d_vjp(np.ones((1, 1, 1, 1)), x, (1, 4), (1, 4), (0, 0), (1, 1), False)
        np.testing.assert_array_equal(grad, [[[[0, 1, 0, 0]]]])
        low = np.array([[[[5, -np.inf, -np.inf, -np.inf]]]])
        y, argmax = ops.max_pool2d(low, (1, 3), (1, 1), (0, 1), (1, 1), False, return_indices=True)
        np.testing.assert_array_equal(y, [[[[5, 5, -np.inf, -np.inf]]]])
        np.testing.assert_array_equal(argmax, [[[[0, 0, 1, 2]]]])


def test_max_pool2d_rows_wholly_on_padding():
    """Dilation 2 over a one-row input padded by 1: the window's rows -1 and 1 both lie on
    padding (its columns inside), so every output is ``-inf`` with arg-max 0, where the gradient
    goes, as the reference says (torch picks an index of its own there)."""
    x = np.arange(10.0).reshape(1, 2, 1, 5)
    args = ((2, 3), (1, 1), (1, 1), (2, 1), False)
    y, argmax = pool.max_pool2d(x, *args, return_indices=True)
    assert y.shape == (1, 2, 1, 5) and np.isneginf(y).all() and not argmax.any()
    ky, kargmax = k_pool.max_pool2d(x, *args, return_indices=True)
    np.testing.assert_array_equal(ky, y)
    np.testing.assert_array_equal(kargmax, argmax)
    np.testing.assert_array_equal(k_pool.max_pool2d(x, *args), y)
    g = np.ones(y.shape)
    np.testing.assert_array_equal(
        k_pool.max_pool2d_vjp(g, x, *args), pool.max_pool2d_vjp(g, x, *args)
    )


@given(case=pool_case(False), dtype=dtypes, data=st.data(), include=st.booleans())
@both_kernel_builds
def test_avg_pools_propagate_nan_as_torch(case, dtype, data, include):
    kernel, stride, padding, _, ceil_mode, size, batch = case
    x = plant_nonfinite(data, draw_array(data, (batch, 2, *size), dtype))
    args = (kernel, stride, padding, ceil_mode, include, None)
    terms = float(np.abs(x[np.isfinite(x)]).max(initial=1.0))  # a mean's error is the terms'
    expected = F.avg_pool2d(torch.tensor(x), kernel, stride, padding, ceil_mode, include).numpy()
    assert_nan_close(pool.avg_pool2d(x, *args), expected, terms)
    assert_nan_close(k_pool.avg_pool2d(x, *args), expected, terms)
    out = tuple(data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="adaptive size"))
    expected = F.adaptive_avg_pool2d(torch.tensor(x), out).numpy()
    assert_nan_close(pool.adaptive_avg_pool2d(x, out), expected, terms)
    assert_nan_close(k_pool.adaptive_avg_pool2d(x, out), expected, terms)


TORCH_ACTIVATIONS = {  # called with ELEMENTWISE's extra arguments
    "relu": F.relu, "relu6": F.relu6, "leaky_relu": F.leaky_relu,
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "silu": F.silu,
    "hardsigmoid": lambda t: torch.clamp(t + 3, 0, 6) / 6,  # exact: see test_layers.ExactHardsigmoid
    "hardswish": F.hardswish, "gelu": lambda t, approximate: F.gelu(t, approximate=approximate),
    "hardtanh": F.hardtanh,
}  # fmt: skip


@pytest.mark.parametrize("name, extra, vjp_uses", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@given(data=st.data(), dtype=dtypes)
@both_kernel_builds
def test_activations_propagate_nan_as_torch(name, extra, vjp_uses, data, dtype):
    """Every activation maps NaN to NaN; the VJPs give torch's gradient at NaN (ReLU passes it,
    LeakyReLU scales it by the slope; tanh and sigmoid give NaN), at the kinks and at Inf. ReLU6's
    and Hardtanh's give 0 at NaN: torch's gives 0 in its vectorised blocks and the gradient in their scalar
    tail, so there its NaN positions are checked against 0 instead; likewise Hardswish's VJP
    against NaN at a NaN, and GELU at +Inf against +Inf (torch's float32 gives NaN in its
    vectorised blocks); GELU's VJP at an infinite dL/dy against dL/dy times torch's slope (torch's
    tanh form adds two terms of opposite signs there: NaN)."""
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3), label="shape"))
    x = draw_array(data, shape, dtype) * 4
    x.flat[::3] = 0
    x.flat[1::5] = 6
    x = plant_nonfinite(data, x)
    g = cotangent(data, shape, dtype)
    xt = torch.tensor(x, dtype=TORCH_DTYPE[dtype], requires_grad=True)
    yt = TORCH_ACTIVATIONS[name](xt, *extra)
    yt.backward(torch.tensor(g))
    expected = xt.grad.numpy()
    if name in ("relu6", "hardtanh"):
        expected = np.where(np.isnan(x), 0, expected)
    if name == "hardswish":  # torch: NaN in its vectorised float64 blocks, else the gradient
        expected = np.where(np.isnan(x), np.nan, expected)
    if name == "gelu":  # an infinite dL/dy: npxai's dL/dy * GELU'(x) is +-Inf; torch's sum of
        # two terms, each times dL/dy, is Inf - Inf = NaN where they differ in sign. The slope
        # in float64, rounded to the dtype: torch's tanh form cancels a far negative x's tiny
        # slope to 0 (1 + tanh(u) = 0: Inf * 0 = NaN) where npxai's is the tiny number (-Inf), in
        # float32 and, for x below about -7, in float64; so the slope of the tanh form is
        # autograd's of the same function written as x sigmoid(2u), which does not cancel
        xs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        if extra == ("tanh",):
            u = math.sqrt(2 / math.pi) * (xs + 0.044715 * xs**3)
            (xs * torch.sigmoid(2 * u)).backward(torch.ones_like(xs))
        else:
            TORCH_ACTIVATIONS[name](xs, *extra).backward(torch.ones_like(xs))
        slope = xs.grad.numpy().astype(dtype)
        expected = np.where(np.isinf(g) & np.isfinite(x), g * slope, expected)
    terms = float(np.abs(g[np.isfinite(g)]).max(initial=1.0))  # g (1 - y^2) cancels terms of g
    expected_y = yt.detach().numpy()
    if name == "gelu":  # torch's float32 gelu(+inf): inf in its scalar tail, NaN in its blocks
        expected_y = np.where(x == np.inf, np.inf, expected_y)
    # x Phi(x), x sigmoid(x), x clip(x + 3): terms of |x|'s size (torch's float32 1 + erf(x)
    # loses digits where Phi is small; npxai's erfc does not)
    products = ("gelu", "silu", "hardswish")
    y_terms = float(np.abs(x[np.isfinite(x)]).max(initial=1.0)) if name in products else None
    for ops in (activation, k_activation):
        y = getattr(ops, name)(x, *extra)
        assert_nan_close(y, expected_y, y_terms)
        point = x if vjp_uses == "x" else y
        assert_nan_close(getattr(ops, name + "_vjp")(g, point, *extra), expected, terms)
