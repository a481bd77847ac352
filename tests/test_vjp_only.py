"""``model.trace(x, vjp_only=True)``: each layer's VJP reads only what its ``vjp_reads`` says, so a
gradient-only trace may drop the rest; the gradient is the same, bit for bit."""

import numpy as np
import pytest
from conftest import draw_array
from hypothesis import given
from hypothesis import strategies as st

import npxai
from npxai import layers
from npxai.module import shape_only

BACKENDS = ["numpy", "numba"]

#: One instance of every leaf layer with a VJP, and an input shape for it.
LAYERS = [
    (lambda: layers.Linear(5, 3), (2, 5)),
    (lambda: layers.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 6)),
    (lambda: layers.Conv2d(2, 4, 3, stride=2, groups=2), (1, 2, 7, 7)),
    (lambda: layers.MaxPool2d(2), (2, 3, 4, 6)),
    (lambda: layers.AvgPool2d(3, stride=2, padding=1), (2, 3, 5, 5)),
    (lambda: layers.AdaptiveAvgPool2d((2, 3)), (2, 3, 5, 7)),
    (lambda: layers.BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda: layers.BatchNorm1d(4), (3, 4)),
    (lambda: layers.ReLU(), (2, 3, 4)),
    (lambda: layers.ReLU6(), (2, 3, 4)),
    (lambda: layers.LeakyReLU(0.1), (2, 3, 4)),
    (lambda: layers.Tanh(), (2, 3, 4)),
    (lambda: layers.Sigmoid(), (2, 3, 4)),
    (lambda: layers.Softmax(1), (2, 3, 4)),
    (lambda: layers.Flatten(), (2, 3, 4)),
    (lambda: layers.Dropout(0.5), (2, 3)),
    (lambda: layers.Identity(), (2, 3)),
    (lambda: layers.Hardtanh(-0.5, 0.5), (2, 3, 4)),
    (lambda: layers.Permute([0, 2, 1]), (2, 3, 4)),
    (lambda: layers.Reshape((-1, 2)), (2, 3, 4)),
    (lambda: layers.Mean((1, -1), keepdim=True), (2, 3, 4)),
    (lambda: layers.LayerNorm((3, 4)), (2, 3, 4)),
    (lambda: layers.LayerNorm2d(3), (2, 3, 2, 2)),
    (lambda: layers.ConstantPad2d((1, 0, 2, 1), 0.5), (2, 3, 2, 2)),
    (lambda: layers.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 2, 3)),
]


def nan_like(a: np.ndarray) -> np.ndarray:
    """A stand-in whose every value is NaN: a VJP that reads it returns NaNs."""
    return np.broadcast_to(np.array(np.nan, a.dtype), a.shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LAYERS, ids=lambda c: repr(c[0]()))
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_vjp_reads_no_more_than_it_declares(case, backend, data, dtype):
    """The VJP with every undeclared argument replaced by NaNs equals the VJP with both."""
    npxai.manual_seed(0)
    layer, shape = case[0](), case[1]
    x = draw_array(data, shape, dtype)
    y = layer.forward(x, backend)
    g = draw_array(data, y.shape, dtype, "g")
    expected = layer.vjp(x, y, g, backend)
    xs = x if "input" in layer.vjp_reads else nan_like(x)
    ys = y if "output" in layer.vjp_reads else nan_like(y)
    assert np.array_equal(layer.vjp(xs, ys, g, backend), expected)


def small_cnn() -> npxai.Sequential:
    npxai.manual_seed(1)
    return npxai.Sequential(
        layers.Conv2d(3, 4, 3, padding=1),
        layers.BatchNorm2d(4),
        layers.ReLU(),
        layers.MaxPool2d(2),
        layers.Conv2d(4, 6, 3),
        layers.LeakyReLU(0.1),
        layers.AvgPool2d(2),
        layers.Flatten(),
        layers.Linear(6, 5),
        layers.Tanh(),
        layers.Linear(5, 4),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_vjp_only_trace_gives_the_same_gradient(backend, data, dtype):
    model = small_cnn()
    x = draw_array(data, (2, 3, 10, 10), dtype)
    seed = draw_array(data, (2, 4), dtype, "seed")
    step = npxai.module.vjp_step(backend)
    full = model.backward(model.trace(x, backend), seed, step)
    lean = model.trace(x, backend, vjp_only=True)
    assert np.array_equal(model.backward(lean, seed, step), full)
    assert np.array_equal(lean.output, model.trace(x, backend).output)


def holds_values(a: np.ndarray) -> bool:
    return a.size > 0 and any(stride != 0 for stride in a.strides)


def test_vjp_only_trace_keeps_only_what_the_vjps_read():
    """In a VGG-like block, only the ReLU outputs (which the max pool reads too) and the max
    pool's input keep their values; the convolutions' outputs are not held by the trace."""
    model = small_cnn()
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 10))
    trace = model.trace(x, "numba", vjp_only=True)
    held = {
        (key, part)
        for key, record in trace.items()
        for part, a in (("input", record.input), ("output", record.output))
        if holds_values(a)
    }
    assert held == {("2", "output"), ("3", "input"), ("5", "input"), ("9", "output")}
    assert trace["2"].output is trace["3"].input
    stand_in = trace["0"].output
    assert stand_in.shape == (2, 4, 10, 10) and stand_in.dtype == x.dtype
    assert not stand_in.flags.writeable


def test_shape_only_has_shape_and_dtype_and_no_memory():
    a = np.ones((3, 4), np.float32)
    s = shape_only(a)
    assert s.shape == a.shape and s.dtype == a.dtype and s.strides == (0, 0)
    assert not s.any()


def test_vjp_only_is_refused_on_cuda():
    with pytest.raises(ValueError, match="vjp_only is for the host backends"):
        small_cnn().trace(np.zeros((1, 3, 10, 10)), "cuda", vjp_only=True)
