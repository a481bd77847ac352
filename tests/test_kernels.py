"""Every compiled CPU kernel against the NumPy reference, on hypothesis-drawn shapes, strides,
padding, dilation, groups, batch sizes (1 included) and dtypes: float64 to 1e-12 and float32 to
1e-5 relative error (max abs error over max abs value)."""

from unittest import mock

import numpy as np
import pytest
from conftest import assert_same, draw_array
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
def test_conv2d_and_its_vjp(case, bias, dtype, data):
    groups, c, o, kernel, stride, padding, dilation, size, batch = case
    x = draw_array(data, (batch, c, *size), dtype)
    w = draw_array(data, (o, c // groups, *kernel), dtype, "w")
    b = draw_array(data, (o,), dtype, "b") if bias else None
    args = (stride, padding, dilation, groups)
    y = conv.conv2d(x, w, b, *args)
    assert_same(k_conv.conv2d(x, w, b, *args), y)
    g = draw_array(data, y.shape, dtype, "g")
    flipped_from = data.draw(st.sampled_from([0, 2**62]), label="FLIPPED_MIN_SIZE")
    with mock.patch.object(k_conv, "FLIPPED_MIN_SIZE", flipped_from):  # both stride-1 paths
        gx = k_conv.conv2d_vjp(g, w, size, *args)
    assert_same(gx, conv.conv2d_vjp(g, w, size, *args))


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
def test_max_pool2d_and_its_vjp(case, dtype, data, ties):
    kernel, stride, padding, dilation, ceil_mode, size, batch = case
    x = draw_array(data, (batch, 2, *size), dtype)
    if ties:  # after a ReLU: many equal zeros, where the first maximum must win
        x = np.maximum(x, 0)
    y, argmax = pool.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    ky, kargmax = k_pool.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(ky, y)
    np.testing.assert_array_equal(kargmax, argmax)
    g = draw_array(data, y.shape, dtype, "g")
    args = (kernel, stride, padding, dilation, ceil_mode)
    assert_same(k_pool.max_pool2d_vjp(g, x, *args), pool.max_pool2d_vjp(g, x, *args))


@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    ceil_mode=st.booleans(),
    ties=st.booleans(),
    dtype=dtypes,
    data=st.data(),
)
def test_max_pool2d_2x2_and_its_vjp(size, ceil_mode, ties, dtype, data):
    """Kernel 2, stride 2 (its own kernels, unless ceil_mode cuts a window): odd sizes leave a
    last row or column out of every window; after a ReLU, ties go to the first maximum."""
    args = ((2, 2), (2, 2), (0, 0), (1, 1), ceil_mode)
    assume(min(size) >= 2)
    x = draw_array(data, (2, 3, *size), dtype)
    if ties:
        x = np.maximum(x, 0)
    y, argmax = pool.max_pool2d(x, *args)
    ky, kargmax = k_pool.max_pool2d(x, *args)
    np.testing.assert_array_equal(ky, y)
    np.testing.assert_array_equal(kargmax, argmax)
    g = draw_array(data, y.shape, dtype, "g")
    np.testing.assert_array_equal(
        k_pool.max_pool2d_vjp(g, x, *args), pool.max_pool2d_vjp(g, x, *args)
    )


@given(case=pool_case(False), dtype=dtypes, data=st.data(), include=st.booleans(),
       divisor=st.one_of(st.none(), st.integers(1, 5)))  # fmt: skip
def test_avg_pool2d_and_its_vjp(case, dtype, data, include, divisor):
    kernel, stride, padding, _, ceil_mode, size, batch = case
    x = draw_array(data, (batch, 2, *size), dtype)
    y = pool.avg_pool2d(x, kernel, stride, padding, ceil_mode, include, divisor)
    assert_same(k_pool.avg_pool2d(x, kernel, stride, padding, ceil_mode, include, divisor), y)
    g = draw_array(data, y.shape, dtype, "g")
    args = (size, kernel, stride, padding, include, divisor)
    assert_same(k_pool.avg_pool2d_vjp(g, *args), pool.avg_pool2d_vjp(g, *args))


@given(data=st.data(), dtype=dtypes)
def test_adaptive_avg_pool2d_and_its_vjp(data, dtype):
    size = data.draw(st.tuples(st.integers(1, 11), st.integers(1, 11)), label="size")
    out = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)), label="output size")
    x = draw_array(data, (data.draw(st.integers(1, 3)), 2, *size), dtype)
    y = pool.adaptive_avg_pool2d(x, out)
    assert_same(k_pool.adaptive_avg_pool2d(x, out), y)
    g = draw_array(data, y.shape, dtype, "g")
    assert_same(k_pool.adaptive_avg_pool2d_vjp(g, size), pool.adaptive_avg_pool2d_vjp(g, size))


@given(data=st.data(), dtype=dtypes, affine=st.booleans())
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
    ("tanh", (), "y"), ("sigmoid", (), "y"),
]  # fmt: skip


@pytest.mark.parametrize("name, extra, vjp_uses", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@given(data=st.data(), dtype=dtypes)
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
    assert_same(k_pool.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)[0],
                pool.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)[0])  # fmt: skip
