"""The device side of the LRP step (kernels/cuda/lrp.py) against its NumPy reference
(npxai/reference/lrp.py, the expressions of npxai.lrp.rules), and the device arithmetic of the
layer graph's glue (kernels/cuda/arithmetic.py) against NumPy's operators, under Numba's CUDA
simulator (tests/conftest.py), on tiny arrays."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from npxai.kernels.cuda import arithmetic as A
from npxai.kernels.cuda import lrp as K
from numba import cuda

from npxai import rules as R
from npxai.reference import lrp as reference
from npxai.reference.lrp import relevance_ratio

dtypes = st.sampled_from([np.float64, np.float32])
shapes = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4))


def draw(data, shape, dtype, zeros: bool = True):
    seed = data.draw(st.integers(0, 2**31), label="seed")
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if zeros:  # exact zeros, where the stabilisers and signs differ
        a[np.random.default_rng(seed + 1).random(shape) < 0.3] = 0
    return a


@settings(max_examples=10)
@given(shape=shapes, dtype=dtypes, how=st.sampled_from(list(K.MODIFIERS)), data=st.data())
def test_modifiers_match_the_rules(shape, dtype, how, data):
    p = draw(data, shape, dtype)
    out = K.modify(cuda.to_device(p), how).copy_to_host()
    expected = getattr(R, how)(p)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=10)
@given(shape=shapes, dtype=dtypes, how=st.sampled_from(R.STABILIZERS), data=st.data())
def test_relevance_ratio_is_the_stabilised_division(shape, dtype, how, data):
    share, z = draw(data, shape, dtype, zeros=False), draw(data, shape, dtype)
    epsilon = data.draw(st.sampled_from([0.0, 1e-6, 0.1]), label="epsilon")
    out = K.relevance_ratio(cuda.to_device(share), cuda.to_device(z), epsilon, how)
    expected = relevance_ratio(share, z, epsilon, how)  # share / stab(z), 0 where stab(z) = 0
    np.testing.assert_allclose(
        out.copy_to_host(), expected, rtol=1e-6 if dtype == np.float32 else 1e-15
    )


@settings(max_examples=6)
@given(shape=shapes, dtype=dtypes, sign=st.sampled_from(["positive", "negative"]), data=st.data())
def test_select_sign(shape, dtype, sign, data):
    r, z0 = draw(data, shape, dtype, zeros=False), draw(data, shape, dtype)
    out = K.select_sign(cuda.to_device(r), cuda.to_device(z0), sign).copy_to_host()
    np.testing.assert_array_equal(out, r * (z0 > 0 if sign == "positive" else z0 < 0))


@settings(max_examples=6)
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_accumulate_adds_in_place(shape, dtype, data):
    total, x, t = (draw(data, shape, dtype) for _ in range(3))
    device = cuda.to_device(total)
    out = K.accumulate(device, -1.5, cuda.to_device(x), cuda.to_device(t))
    # relative to the terms: total and 1.5 x t may cancel (float32 rounds each product once
    # where a fused multiply-add rounds once in all)
    terms = np.abs(total) + 1.5 * np.abs(x * t)
    np.testing.assert_allclose(device.copy_to_host(), total + -1.5 * x * t, rtol=0,
                               atol={np.float32: 1e-6, np.float64: 1e-12}[dtype] * terms.max())  # fmt: skip
    assert out is device  # in place
    first = K.accumulate(None, 2.0, cuda.to_device(x), cuda.to_device(t)).copy_to_host()
    np.testing.assert_array_equal(first, reference.accumulate(None, 2.0, x, t))


@settings(max_examples=6)
@given(shape=shapes, dtype=dtypes, channels=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       data=st.data())  # fmt: skip
def test_stack_is_the_concatenation_along_axis_1(shape, dtype, channels, data):
    shares = [draw(data, (shape[0], c, *shape[1:]), dtype) for c in channels]
    coefficients = [2.0, -1.0, 0.5][: len(channels)]
    out = K.stack([cuda.to_device(r) for r in shares], coefficients).copy_to_host()
    np.testing.assert_array_equal(out, reference.stack(shares, coefficients))
    with pytest.raises(ValueError, match="must differ only in axis 1"):
        K.stack([cuda.to_device(shares[0]), cuda.to_device(shares[0][:, :, :1, :0])], [1, 1])


def test_nonnegative_counts_nan_as_negative():
    for a in ([0.0, 1.0], [0.0, -1e-30], [np.nan, 1.0], [np.inf, 0.0]):
        a = np.array(a)
        assert K.nonnegative(cuda.to_device(a)) == reference.nonnegative(a), a


def test_every_reference_function_has_a_device_twin_with_the_same_signature():
    import inspect

    public = [n for n, f in vars(reference).items()
              if inspect.isfunction(f) and f.__module__ == reference.__name__]  # fmt: skip
    assert len(public) == 7
    for name in public:
        assert (
            inspect.signature(getattr(K, name)).parameters.keys()
            == inspect.signature(getattr(reference, name)).parameters.keys()
        ), name


def test_any_nonzero_and_bad_names():
    assert not K.any_nonzero(cuda.to_device(np.zeros((2, 3))))
    one = np.zeros((2, 3), np.float32)
    one[1, 2] = -1e-30
    assert K.any_nonzero(cuda.to_device(one))
    with pytest.raises(ValueError, match="unknown modifier 'abs'"):
        K.modify(cuda.to_device(one), "abs")
    with pytest.raises(ValueError, match="unknown stabilizer 'tanh'"):
        K.relevance_ratio(cuda.to_device(one), cuda.to_device(one), 0.1, "tanh")


@settings(max_examples=6)
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_arithmetic(shape, dtype, data):
    a, b = draw(data, shape, dtype), draw(data, shape, dtype)
    for name, expected in (("add", a + b), ("multiply", a * b)):
        out = getattr(A, name)(cuda.to_device(a), cuda.to_device(b))
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.copy_to_host(), expected)
    zeros = A.zeros(shape, dtype).copy_to_host()
    assert zeros.dtype == dtype and zeros.shape == shape and not zeros.any()
    assert A.count_nonfinite(cuda.to_device(a)) == 0
    a.flat[0], a.flat[-1] = np.inf, np.nan
    assert A.count_nonfinite(cuda.to_device(a)) == (2 if a.size > 1 else 1)


def test_arithmetic_refuses_operands_that_differ():
    a = cuda.to_device(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"add: operands must have one shape and dtype, got "
                       r"float64 \(2, 3\) and float32 \(2, 3\)"):  # fmt: skip
        A.add(a, cuda.to_device(np.ones((2, 3), np.float32)))
    with pytest.raises(ValueError, match="multiply: operands must have one shape"):
        A.multiply(a, cuda.to_device(np.ones(6)))


COMPILE = """
import sys, types as pytypes
from numba import cuda, types
from numba.cuda.cudadrv.error import CudaSupportError, NvvmSupportError
import numba.cuda.dispatcher
from npxai.kernels.cuda import arithmetic, lrp

CC = (8, 0)  # device functions ask the (absent) device for its compute capability
numba.cuda.dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=CC)
for scalar in (types.float32, types.float64):
    a = types.Array(scalar, 1, "C")
    signatures = {
        lrp._modify: (a, types.int64, a),
        lrp._ratio: (a, a, scalar, types.int64, a),
        lrp._select: (a, a, types.boolean, a),
        lrp._accumulate: (a, scalar, a, a),
        lrp._product: (scalar, a, a),
        lrp._place: (a, scalar, a, types.int64, types.int64, types.int64, types.int64),
        lrp._count_nonzero: (a, types.Array(types.int64, 1, "C")),
        lrp._count_below_zero: (a, types.Array(types.int64, 1, "C")),
        arithmetic._add: (a, a, a),
        arithmetic._multiply: (a, a, a),
        arithmetic._fill_zero: (a,),
        arithmetic._count_nonfinite: (a, types.Array(types.int64, 1, "C")),
    }
    for kernel, signature in signatures.items():
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=CC)
        except (NvvmSupportError, CudaSupportError) as e:
            print(type(e).__name__, e)
            sys.exit(77)
        other = ".f64" if scalar == types.float32 else ".f32"
        print(kernel.py_func.__name__, scalar, other in ptx)
"""


def test_the_kernels_compile_for_a_gpu_in_one_precision():
    """The simulator runs kernels as Python and so accepts what Numba cannot compile for a GPU
    (numba#10753: two-argument ``max``/``min``): compile every kernel to PTX with libNVVM in a
    process without the simulator (no GPU needed), and check that the float32 kernels do no
    float64 arithmetic (nor the float64 ones float32)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode == 77:
        pytest.skip(f"cannot compile for a GPU here: {done.stdout.strip()}")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split("\n")[:-1]
    assert len(lines) == 24, done.stdout
    assert all(line.endswith("False") for line in lines), done.stdout
