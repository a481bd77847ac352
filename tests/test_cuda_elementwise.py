"""The device twins of the activation, pooling and batch- and layer-norm kernels
(kernels/cuda/activation.py, pool.py, norm.py) against the NumPy reference, under Numba's CUDA simulator (tests/conftest.py), on
hypothesis-drawn tiny shapes: float64 to 1e-12 and float32 to 1e-5 relative error, as the CPU
kernels (tests/test_kernels.py); max pooling's values and arg-max exactly."""

import inspect
import json
import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
from conftest import assert_same as assert_close_to_reference
from conftest import draw_array, public_functions
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from npxai.kernels.cpu import activation as cpu_activation
from npxai.kernels.cpu import norm as cpu_norm
from npxai.kernels.cpu import pool as cpu_pool
from npxai.kernels.cuda import activation as k_activation
from npxai.kernels.cuda import norm as k_norm
from npxai.kernels.cuda import pool as k_pool
from numba import config, cuda

from npxai.reference import activation, norm, pool

dtypes = st.sampled_from([np.float64, np.float32])
FEW = settings(max_examples=8)


#: A kernel's device result against the reference (conftest.assert_same with device=True).
assert_same = partial(assert_close_to_reference, device=True)


def host(a) -> np.ndarray:
    """A kernel's result, which must be a device array, on the host."""
    assert not isinstance(a, np.ndarray) and hasattr(a, "copy_to_host"), type(a)
    return a.copy_to_host()


dev = cuda.to_device

FAMILIES = [
    (cpu_activation, k_activation),
    (cpu_pool, k_pool),
    (cpu_norm, k_norm),
]


@pytest.mark.parametrize("cpu, gpu", FAMILIES, ids=["activation", "pool", "norm"])
def test_every_cpu_function_has_a_cuda_twin_with_the_same_parameters(cpu, gpu):
    cpu_public, gpu_public = public_functions(cpu), public_functions(gpu)
    assert set(gpu_public) == set(cpu_public)
    for name, f in cpu_public.items():
        twin = gpu_public[name]
        parameters = [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]
        twin_parameters = [
            (p.name, p.kind, p.default) for p in inspect.signature(twin).parameters.values()
        ]
        assert twin_parameters == parameters, name
        assert twin.__doc__ and "=" in twin.__doc__, f"{name} has no formula in its docstring"


ELEMENTWISE = [
    ("relu", (), "x"), ("relu6", (), "x"), ("leaky_relu", (0.1,), "x"),
    ("tanh", (), "y"), ("sigmoid", (), "y"), ("silu", (), "x"), ("hardsigmoid", (), "x"),
    ("hardswish", (), "x"), ("gelu", ("none",), "x"), ("gelu", ("tanh",), "x"),
    ("hardtanh", (0.0, 6.0), "x"),
]  # fmt: skip
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@pytest.mark.parametrize("name, extra, vjp_uses", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@FEW
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_elementwise_activations_and_their_vjps(name, extra, vjp_uses, shape, dtype, data):
    x = draw_array(data, shape, dtype) * 4
    x.flat[::3] = 0  # the kinks, where the derivatives follow torch
    x.flat[1::5] = 6
    y = getattr(activation, name)(x, *extra)
    assert_same(getattr(k_activation, name)(dev(x), *extra), y)
    g = draw_array(data, shape, dtype, "g")
    point = x if vjp_uses == "x" else y
    expected = getattr(activation, name + "_vjp")(g, point, *extra)
    assert_same(getattr(k_activation, name + "_vjp")(dev(g), dev(point), *extra), expected)


@FEW
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_softmax_and_its_vjp_over_any_dim(shape, dtype, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    x = draw_array(data, shape, dtype) * 3
    y = activation.softmax(x, dim)
    assert_same(k_activation.softmax(dev(x), dim), y)
    g = draw_array(data, shape, dtype, "g")
    terms = float(np.abs(y).max() * np.abs(g).max())  # y * (g - <g, y>) cancels such terms
    assert_same(k_activation.softmax_vjp(dev(g), dev(y), dim), activation.softmax_vjp(g, y, dim), terms)  # fmt: skip


@st.composite
def pool_case(draw, dilation_allowed):
    kernel = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), label="kernel")
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 2)), label="stride")
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2))) if dilation_allowed else (1, 1)
    padding = draw(st.tuples(st.integers(0, kernel[0] // 2), st.integers(0, kernel[1] // 2)))
    ceil_mode = draw(st.booleans(), label="ceil_mode")
    size = draw(st.tuples(st.integers(1, 6), st.integers(1, 6)), label="size")
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True):
        assume(pool.pool_output_size(n, k, s, p, d, ceil_mode) >= 1)
    shape = (draw(st.integers(1, 2), label="batch"), draw(st.integers(1, 3), label="channels"))
    return kernel, stride, padding, dilation, ceil_mode, shape + size


@settings(max_examples=16)
@given(case=pool_case(True), dtype=dtypes, data=st.data(), ties=st.booleans())
def test_max_pool2d_and_its_vjp(case, dtype, data, ties):
    kernel, stride, padding, dilation, ceil_mode, shape = case
    x = draw_array(data, shape, dtype)
    if ties:  # after a ReLU: many equal zeros, where the first maximum must win
        x = np.maximum(x, 0)
    args = (kernel, stride, padding, dilation, ceil_mode)
    y, argmax = pool.max_pool2d(x, *args, return_indices=True)
    ky, kargmax = k_pool.max_pool2d(dev(x), *args, return_indices=True)
    np.testing.assert_array_equal(host(ky), y, strict=True)
    np.testing.assert_array_equal(host(kargmax), argmax, strict=True)
    g = draw_array(data, y.shape, dtype, "g")
    assert_same(k_pool.max_pool2d_vjp(dev(g), dev(x), *args), pool.max_pool2d_vjp(g, x, *args))


@settings(max_examples=16)
@given(case=pool_case(False), dtype=dtypes, data=st.data(), include=st.booleans(),
       divisor=st.one_of(st.none(), st.integers(1, 5)))  # fmt: skip
def test_avg_pool2d_and_its_vjp(case, dtype, data, include, divisor):
    kernel, stride, padding, _, ceil_mode, shape = case
    x = draw_array(data, shape, dtype)
    y = pool.avg_pool2d(x, kernel, stride, padding, ceil_mode, include, divisor)
    assert_same(k_pool.avg_pool2d(dev(x), kernel, stride, padding, ceil_mode, include, divisor), y)
    g = draw_array(data, y.shape, dtype, "g")
    args = (shape[2:], kernel, stride, padding, include, divisor)
    assert_same(k_pool.avg_pool2d_vjp(dev(g), *args), pool.avg_pool2d_vjp(g, *args))


@pytest.mark.parametrize("include", [True, False])
def test_avg_pool2d_ceil_mode_overhang_is_not_counted(include):
    """Size 4, kernel 3, stride 2, padding 1, ceil_mode: the last window spans [3, 6) and is
    clipped to [3, 5) (input plus padding) for its divisor, as in torch."""
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 5))
    args = ((3, 3), (2, 2), (1, 1), True, include, None)
    y = pool.avg_pool2d(x, *args)
    assert y.shape == (1, 2, 3, 3)
    assert_same(k_pool.avg_pool2d(dev(x), *args), y)
    g = np.random.default_rng(3).standard_normal(y.shape)
    vjp_args = ((4, 5), (3, 3), (2, 2), (1, 1), include, None)
    assert_same(k_pool.avg_pool2d_vjp(dev(g), *vjp_args), pool.avg_pool2d_vjp(g, *vjp_args))


@FEW
@given(data=st.data(), dtype=dtypes)
def test_adaptive_avg_pool2d_and_its_vjp(data, dtype):
    size = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)), label="size")
    out = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="output size")
    x = draw_array(data, (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), *size), dtype)
    y = pool.adaptive_avg_pool2d(x, out)
    assert_same(k_pool.adaptive_avg_pool2d(dev(x), out), y)
    g = draw_array(data, y.shape, dtype, "g")
    assert_same(k_pool.adaptive_avg_pool2d_vjp(dev(g), size), pool.adaptive_avg_pool2d_vjp(g, size))


@FEW
@given(data=st.data(), dtype=dtypes, affine=st.booleans(), fixed_std=st.booleans())
def test_layer_norm_and_its_vjp(data, dtype, affine, fixed_std):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label="shape")
    start = data.draw(st.integers(1, len(shape) - 1), label="start")
    stop = data.draw(st.integers(start + 1, len(shape)), label="stop")
    x = draw_array(data, shape, dtype) * 2 + 1
    w = draw_array(data, shape[start:stop], dtype, "w") if affine else None
    b = draw_array(data, shape[start:stop], dtype, "b") if affine else None
    on_device = (None, None) if w is None else (dev(w), dev(b))
    y = norm.layer_norm(x, w, b, 1e-5, start, stop)
    assert_same(k_norm.layer_norm(dev(x), *on_device, 1e-5, start, stop), y)
    g = draw_array(data, shape, dtype, "g")
    expected = norm.layer_norm_vjp(g, x, w, 1e-5, start, stop, fixed_std)
    w_wide = 1 if w is None else w.reshape(w.shape + (1,) * (len(shape) - stop))
    inv_std = 1 / np.sqrt(x.astype(np.float64).var(axis=tuple(range(start, stop))).min() + 1e-5)
    terms = float(np.abs(g * w_wide).max() * inv_std)  # what (g - mean(g) - ...) / sigma cancels
    ours = k_norm.layer_norm_vjp(dev(g), dev(x), on_device[0], 1e-5, start, stop, fixed_std)
    assert_same(ours, expected, terms)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool2d_window_wholly_on_padding(dtype):
    """With dilation a window can miss the input: its maximum is -inf, its recorded arg-max 0,
    and the reference's VJP credits its gradient to element 0."""
    x = np.array([[[[2.0, -1.0], [3.0, 5.0]]]], dtype)
    args = ((1, 2), (1, 1), (0, 1), (1, 2), False)  # width 2: columns -1, 1 then 0, 2
    x1 = x[..., :1].copy()  # width 1: the only window is columns -1 and 1, both padding
    for inp in (x, x1):
        y, argmax = pool.max_pool2d(inp, *args, return_indices=True)
        ky, kargmax = k_pool.max_pool2d(dev(inp), *args, return_indices=True)
        np.testing.assert_array_equal(host(ky), y, strict=True)
        np.testing.assert_array_equal(host(kargmax), argmax, strict=True)
        g = np.arange(1, y.size + 1, dtype=dtype).reshape(y.shape)
        assert_same(
            k_pool.max_pool2d_vjp(dev(g), dev(inp), *args), pool.max_pool2d_vjp(g, inp, *args)
        )
    assert np.isneginf(pool.max_pool2d(x1, *args)).all()


def test_pools_read_strided_device_arrays():
    """The pools index ``x[n, c, h, w]``: a sliced (non-contiguous) device array works as is."""
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8))
    view, expected_input = dev(x)[:, ::2, 1:, ::2], x[:, ::2, 1:, ::2]
    args = ((2, 2), (1, 2), (1, 0), (1, 1), True)
    y, argmax = pool.max_pool2d(expected_input, *args, return_indices=True)
    ky, kargmax = k_pool.max_pool2d(view, *args, return_indices=True)
    np.testing.assert_array_equal(host(ky), y)
    np.testing.assert_array_equal(host(kargmax), argmax)
    args = ((3, 2), (2, 1), (1, 1), False, False, None)
    assert_same(k_pool.avg_pool2d(view, *args), pool.avg_pool2d(expected_input, *args))
    assert_same(k_pool.adaptive_avg_pool2d(view, (4, 3)), pool.adaptive_avg_pool2d(expected_input, (4, 3)))  # fmt: skip


@FEW
@given(data=st.data(), dtype=dtypes, affine=st.booleans())
def test_batch_norm_and_its_vjp(data, dtype, affine):
    c = data.draw(st.integers(1, 3), label="channels")
    tail = data.draw(st.sampled_from([(), (3,), (2, 3)]), label="trailing shape")
    x = draw_array(data, (data.draw(st.integers(1, 2)), c, *tail), dtype)
    mean = draw_array(data, (c,), dtype, "mean")
    var = np.abs(draw_array(data, (c,), dtype, "var")) + 0.1
    weight = draw_array(data, (c,), dtype, "weight") if affine else None
    bias = draw_array(data, (c,), dtype, "bias") if affine else None
    on_device = [None if a is None else dev(a) for a in (mean, var, weight, bias)]
    assert_same(
        k_norm.batch_norm(dev(x), *on_device, 1e-5),
        norm.batch_norm(x, mean, var, weight, bias, 1e-5),
    )
    g = draw_array(data, x.shape, dtype, "g")
    assert_same(
        k_norm.batch_norm_vjp(dev(g), on_device[1], on_device[2], 1e-5),
        norm.batch_norm_vjp(g, var, weight, 1e-5),
    )


def test_batch_norm_with_only_a_weight_or_only_a_bias():
    rng = np.random.default_rng(3)
    x, mean, w, b = (rng.standard_normal(s) for s in [(2, 3, 4), 3, 3, 3])
    var = rng.random(3) + 0.5
    for weight, bias in [(w, None), (None, b)]:
        args = [None if a is None else dev(a) for a in (mean, var, weight, bias)]
        assert_same(k_norm.batch_norm(dev(x), *args, 1e-3), norm.batch_norm(x, mean, var, weight, bias, 1e-3))  # fmt: skip


def every_call(dtype=np.float32) -> dict:
    """One call of every public function on small device arrays: ``{name: thunk}``."""
    rng = np.random.default_rng(1)
    x4 = dev(rng.standard_normal((2, 2, 5, 4)).astype(dtype))
    g2 = dev(rng.standard_normal((2, 2, 2, 2)).astype(dtype))
    c = dev(rng.random(2).astype(dtype) + 0.5)
    pool_args = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    calls = {
        name: partial(getattr(k_activation, name), x4, *extra)
        for name, extra in [
            ("relu", ()), ("relu6", ()), ("leaky_relu", (0.2,)), ("tanh", ()), ("sigmoid", ()),
            ("softmax", (1,)), ("silu", ()), ("hardsigmoid", ()), ("hardswish", ()),
            ("gelu", ("tanh",)), ("hardtanh", (-1.0, 1.0)),
        ]
    }  # fmt: skip
    for name in ["relu", "relu6", "tanh", "sigmoid", "silu", "hardsigmoid", "hardswish"]:
        calls[name + "_vjp"] = partial(getattr(k_activation, name + "_vjp"), x4, x4)
    calls["gelu_vjp"] = lambda: k_activation.gelu_vjp(x4, x4, "none")
    calls["leaky_relu_vjp"] = lambda: k_activation.leaky_relu_vjp(x4, x4, 0.2)
    calls["hardtanh_vjp"] = lambda: k_activation.hardtanh_vjp(x4, x4, -1.0, 1.0)
    calls["softmax_vjp"] = lambda: k_activation.softmax_vjp(x4, x4, -1)
    calls["max_pool2d"] = lambda: k_pool.max_pool2d(x4, *pool_args)
    calls["max_pool2d_vjp"] = lambda: k_pool.max_pool2d_vjp(g2, x4, *pool_args)
    calls["avg_pool2d"] = lambda: k_pool.avg_pool2d(x4, (2, 2), (2, 2), (0, 0), True, False, 3)
    calls["avg_pool2d_vjp"] = lambda: k_pool.avg_pool2d_vjp(
        g2, (5, 4), (2, 2), (2, 2), (0, 0), False, 3
    )
    calls["adaptive_avg_pool2d"] = lambda: k_pool.adaptive_avg_pool2d(x4, (2, 2))
    calls["adaptive_avg_pool2d_vjp"] = lambda: k_pool.adaptive_avg_pool2d_vjp(g2, (5, 4))
    calls["batch_norm"] = lambda: k_norm.batch_norm(x4, c, c, c, c, 1e-5)
    calls["batch_norm_vjp"] = lambda: k_norm.batch_norm_vjp(x4, c, c, 1e-5)
    calls["layer_norm"] = lambda: k_norm.layer_norm(x4, c, None, 1e-5, 1, 2)
    calls["layer_norm_vjp"] = lambda: k_norm.layer_norm_vjp(x4, x4, c, 1e-5, 1, 2, True)
    return calls


def test_device_arrays_stay_on_the_device(monkeypatch):
    """Device arrays in, device arrays out, and nothing read back to the host or sent anew."""
    calls = every_call()
    assert set(calls) == {n for _, gpu in FAMILIES for n in public_functions(gpu)}
    device_array = type(cuda.device_array(1))

    def refuse(*args, **kwargs):
        raise AssertionError("a kernel moved data between host and device")

    monkeypatch.setattr(device_array, "copy_to_host", refuse)
    monkeypatch.setattr(cuda, "to_device", refuse)
    # no NumPy view either: NumPy asks for __array_struct__ / __array_interface__ (which the
    # simulator's array forwards to its host data), then for __array__
    monkeypatch.setattr(device_array, "__array__", refuse, raising=False)
    if config.ENABLE_CUDASIM:
        forward = device_array.__getattr__

        def no_array_interface(self, name):
            if name.startswith("__array"):
                raise AttributeError(name)
            return forward(self, name)

        monkeypatch.setattr(device_array, "__getattr__", no_array_interface)
    for name, call in calls.items():
        result = call()
        for out in result if isinstance(result, tuple) else (result,):
            assert isinstance(out, device_array), (name, type(out))
            assert out.dtype == (np.int64 if out.dtype.kind == "i" else np.float32), name


COMPILE = """
import json, sys, types as pytypes
from numba import cuda, types
from numba.cuda.cudadrv.error import CudaSupportError, NvvmSupportError
import numba.cuda.dispatcher
import npxai.kernels.cuda.activation, npxai.kernels.cuda.norm, npxai.kernels.cuda.pool

CC = (8, 0)  # device functions ask the (absent) device for its compute capability
numba.cuda.dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=CC)

def numba_type(spec):
    if isinstance(spec, list):
        return types.Array(getattr(types, spec[0]), spec[1], spec[2])
    return types.boolean if spec == "bool" else getattr(types, spec)

failures = []
for module, name, specs in json.loads(sys.argv[1]):
    kernel = getattr(sys.modules["npxai.kernels.cuda." + module], name)
    try:
        cuda.compile_ptx(kernel.py_func, tuple(map(numba_type, specs)), cc=CC)
    except (NvvmSupportError, CudaSupportError) as e:  # no libNVVM, or this Numba asks a driver
        print(type(e).__name__, e)
        sys.exit(77)
    except Exception as e:
        failures.append(f"{module}.{name}{tuple(specs)}: {type(e).__name__}: {e}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_every_launched_kernel_compiles_for_a_gpu(monkeypatch):
    """The simulator runs the kernels as Python, so it accepts what Numba cannot compile for a GPU
    (numba 0.66+ fails on the two-argument builtins ``min`` and ``max``, numba#10753). Record each
    kernel launch of every public function, both dtypes, with its argument types, and compile those
    to PTX with libNVVM in a process without the simulator (no GPU needed)."""
    if not config.ENABLE_CUDASIM:
        pytest.skip("on a real GPU every test compiles the kernels")
    launches, recorded = set(), set()

    class Recording:
        def __init__(self, module, name, kernel):
            self.module, self.name, self.kernel = module, name, kernel

        def __getitem__(self, launch):
            def run(*args):
                launches.add((self.module, self.name, tuple(map(spec, args))))
                return self.kernel[launch](*args)

            return run

    def spec(arg):
        if hasattr(arg, "copy_to_host"):
            return (arg.dtype.name, arg.ndim, "C" if arg.is_c_contiguous() else "A")
        if isinstance(arg, bool):
            return "bool"
        return "int64" if isinstance(arg, int) else np.dtype(type(arg)).name

    for module in (k_activation, k_pool, k_norm):
        short = module.__name__.rsplit(".", 1)[1]
        for name, kernel in vars(module).items():
            if isinstance(kernel, cuda.FakeCUDAKernel) and not kernel._device:
                monkeypatch.setattr(module, name, Recording(short, name, kernel))
                recorded.add((short, name))
    for dtype in (np.float32, np.float64):
        for call in every_call(dtype).values():
            call()
    strided = dev(np.zeros((1, 2, 6, 6), np.float32))[:, :, ::2, 1:]
    k_pool.max_pool2d(strided, (2, 2), (1, 1), (0, 0), (1, 1), False)
    k_pool.avg_pool2d(strided, (2, 2), (1, 1), (0, 0), False, True, None)
    k_pool.adaptive_avg_pool2d(strided, (2, 2))
    assert {(m, n) for m, n, _ in launches} == recorded  # every kernel was launched

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    payload = json.dumps(sorted(launches))
    done = subprocess.run(
        [sys.executable, "-c", COMPILE, payload], env=env, capture_output=True, text=True
    )
    if done.returncode == 77:
        pytest.skip(f"cannot compile for a GPU here: {done.stdout.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
