"""The CUDA linear and convolution kernels (kernels/cuda/linear.py, conv.py) against the NumPy
reference, under Numba's CUDA simulator (tests/conftest.py) unless ``NPXAI_TEST_CUDA=device``.

The simulator runs every thread of a block as a Python thread (a 16 x 16 tile: 256 of them), so
shapes are tiny and examples few; they still cover several tiles in each GEMM axis, sizes that are
not multiples of 16, groups, stride, dilation and asymmetric padding, float64 to 1e-12 and float32
to 1e-5 relative error (max abs error over max abs value). The simulator says nothing about speed,
memory coalescing or whether the kernels compile for a GPU; the last is checked by compiling them
to PTX in a subprocess where libNVVM is found.
"""

import inspect
import os
import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest
from conftest import assert_same as assert_close_to_reference
from conftest import draw_array, public_functions
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from npxai.kernels.cpu import conv as cpu_conv
from npxai.kernels.cpu import linear as cpu_linear
from npxai.kernels.cuda import conv as k_conv
from npxai.kernels.cuda import linear as k_linear
from numba import cuda

from npxai.reference import conv, linear

dtypes = st.sampled_from([np.float64, np.float32])


#: A kernel's device result against the reference (conftest.assert_same with device=True).
assert_same = partial(assert_close_to_reference, device=True)


def device(a):
    return None if a is None else cuda.to_device(a)


def check_linear(x, w, b, g_seed=1):
    y = linear.linear(x, w, b)
    assert_same(k_linear.linear(device(x), device(w), device(b)), y)
    g = np.random.default_rng(g_seed).standard_normal(y.shape).astype(x.dtype)
    assert_same(k_linear.linear_vjp(device(g), device(w)), linear.linear_vjp(g, w))


def check_conv(x, w, b, stride, padding, dilation, groups, g_seed=1):
    args = (stride, padding, dilation, groups)
    y = conv.conv2d(x, w, b, *args)
    assert_same(k_conv.conv2d(device(x), device(w), device(b), *args), y)
    g = np.random.default_rng(g_seed).standard_normal(y.shape).astype(x.dtype)
    size = x.shape[2:]
    expected = conv.conv2d_vjp(g, w, size, *args)
    assert_same(k_conv.conv2d_vjp(device(g), device(w), size, *args), expected)


# --- linear ---------------------------------------------------------------------------------------


@settings(max_examples=6)
@given(data=st.data(), dtype=dtypes, bias=st.booleans())
def test_linear_and_its_vjp(data, dtype, bias):
    fin = data.draw(st.integers(1, 20), label="in features")
    fout = data.draw(st.integers(1, 20), label="out features")
    lead = data.draw(st.lists(st.integers(1, 4), min_size=0, max_size=2), label="leading shape")
    x = draw_array(data, (*lead, fin), dtype)
    w = draw_array(data, (fout, fin), dtype, "w")
    b = draw_array(data, (fout,), dtype, "b") if bias else None
    check_linear(x, w, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_over_several_tiles_in_every_axis(dtype):
    """18 rows, 20 inputs and 17 outputs: two tiles along each GEMM axis, the second partial."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 20)).astype(dtype)
    w = rng.standard_normal((17, 20)).astype(dtype)
    check_linear(x, w, rng.standard_normal(17).astype(dtype))


def test_linear_rows_beyond_the_grid_loop_over_row_tiles(monkeypatch):
    """With one block row in the grid (as past CUDA's 65535), every row tile is still computed."""
    monkeypatch.setattr(k_linear, "_MAX_GRID_Y", 1)
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((35, 3)), rng.standard_normal((5, 3))
    check_linear(x, w, rng.standard_normal(5))


# --- conv2d ---------------------------------------------------------------------------------------


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 2]), label="groups")
    cg, og = draw(st.integers(1, 2), label="C'"), draw(st.integers(1, 2), label="O'")
    kernel = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), label="kernel")
    stride = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), label="stride")
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), label="dilation")
    padding = draw(st.tuples(*[st.integers(0, 2)] * 4), label="padding (t, b, l, r)")
    size = draw(st.tuples(st.integers(1, 6), st.integers(1, 6)), label="size")
    batch = draw(st.integers(1, 2), label="batch")
    out = conv.conv2d_output_size(size, kernel, stride, padding, dilation)
    assume(min(out) >= 1)
    # the simulator's cost: at most ~4 blocks of 256 threads per group and direction
    assume(batch * max(out[0] * out[1], size[0] * size[1]) <= 64)
    return groups, cg * groups, og * groups, kernel, stride, padding, dilation, size, batch


@settings(max_examples=8)
@given(case=conv_case(), bias=st.booleans(), dtype=dtypes, data=st.data())
def test_conv2d_and_its_vjp(case, bias, dtype, data):
    groups, c, o, kernel, stride, padding, dilation, size, batch = case
    x = draw_array(data, (batch, c, *size), dtype)
    w = draw_array(data, (o, c // groups, *kernel), dtype, "w")
    b = draw_array(data, (o,), dtype, "b") if bias else None
    check_conv(x, w, b, stride, padding, dilation, groups)


CONV_CASES = {
    # groups, stride, dilation and asymmetric padding together, batch 2
    "grouped-strided-dilated": ((2, 4, 5, 4), (4, 2, 3, 2), (2, 1), (0, 2, 1, 0), (1, 2), 2),
    # 2 * 3 * 3 = 18 > 16 reduction terms in both directions: two tiles along K
    "two-reduction-tiles": ((1, 2, 4, 3), (2, 2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    # 20 output channels (forward M) and, in the vjp, 18 input channels (M): two row tiles each
    "many-output-channels": ((1, 3, 3, 2), (20, 3, 2, 1), (1, 1), (0, 1, 0, 0), (1, 1), 1),
    "many-input-channels": ((1, 18, 2, 2), (2, 18, 1, 2), (1, 2), (0, 0, 1, 1), (1, 1), 1),
    # stride larger than the kernel: input positions that no window reaches get zero gradient
    "gaps": ((2, 2, 5, 5), (2, 1, 1, 2), (2, 3), (0, 0, 0, 1), (1, 1), 2),
    # depthwise, dilation larger than stride
    "depthwise": ((1, 2, 6, 5), (2, 1, 3, 2), (1, 1), (2, 0, 0, 2), (2, 2), 2),
}


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_and_its_vjp_fixed_cases(case, dtype):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    check_conv(x, w, b, stride, padding, dilation, groups)


def test_conv2d_rejects_channels_that_do_not_fit_the_groups():
    x, w = device(np.zeros((1, 3, 4, 4))), device(np.zeros((4, 2, 1, 1)))
    with pytest.raises(ValueError, match="groups"):
        k_conv.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 2)


def test_mixed_dtypes_are_rejected():
    with pytest.raises(TypeError, match="dtype"):
        k_linear.linear(device(np.zeros((2, 3))), device(np.zeros((4, 3), np.float32)), None)


# --- the module surface ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cpu, gpu", [(cpu_linear, k_linear), (cpu_conv, k_conv)], ids=["linear", "conv"]
)
def test_every_cpu_function_has_a_cuda_twin_with_its_parameters(cpu, gpu):
    functions = public_functions(cpu)
    assert functions, "no public functions found: the filter is broken"
    for name, f in functions.items():
        assert hasattr(gpu, name), f"{gpu.__name__} lacks {name}"
        expected = list(inspect.signature(f).parameters)
        assert list(inspect.signature(getattr(gpu, name)).parameters) == expected, name
        assert getattr(gpu, name).__doc__, f"{gpu.__name__}.{name} has no docstring"


# --- compilation for a real GPU -------------------------------------------------------------------

PTX_SCRIPT = textwrap.dedent(
    """
    import sys, types as pytypes
    import numpy as np
    from numba import cuda, types
    from numba.cuda.cudadrv import nvvm
    if not nvvm.is_available():
        sys.exit(77)
    import numba.cuda.dispatcher as dispatcher
    # device functions ask the current GPU for its compute capability; there may be none
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(8, 0))
    from npxai.kernels.cuda import conv as kc, linear as kl
    loaders = {
        "linear": ((kl._load_2d, kl._load_2d_b, kl._store_2d), 2, 3),
        "conv": ((kc._load_weight, kc._load_input_columns, kc._store_output), 4, 15),
        "conv_vjp": (
            (kc._load_weight_transposed, kc._load_grad_columns, kc._store_input_grad), 4, 15
        ),
    }
    for dtype, scalar in ((np.float32, types.float32), (np.float64, types.float64)):
        for name, (functions, ndim, n_params) in loaders.items():
            array = types.Array(scalar, ndim, "A")
            signature = (array, array, array, types.Array(scalar, 1, "A"), types.int64,
                         types.int64, types.int64, types.UniTuple(types.int64, n_params))
            kernel = kl._gemm_kernel(*functions, dtype)
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(8, 0))
            other = ".f64" if dtype == np.float32 else ".f32"
            print(name, dtype.__name__, ".shared" in ptx,
                  "bar.sync" in ptx, other in ptx)
    """
)


def test_kernels_compile_to_ptx_with_shared_tiles_and_no_mixed_precision():
    """Compiled for a real GPU (PTX for sm_80, no GPU needed, only libNVVM): every kernel
    compiles, stages its tiles in shared memory with barriers, and the float32 kernels contain no
    float64 arithmetic (nor the float64 ones float32)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run(
        [sys.executable, "-c", PTX_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    if run.returncode == 77:
        pytest.skip("libNVVM not found: cannot compile CUDA kernels here")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.split("\n")[:-1]
    assert len(lines) == 6, run.stdout
    for line in lines:
        name, dtype, shared, barrier, other_precision = line.split()
        assert (shared, barrier, other_precision) == ("True", "True", "False"), line
