"""The element-wise parts of the LRP step: kernels/cpu/lrp.py against its NumPy reference
(npxai/reference/lrp.py), with hypothesis-drawn shapes, bit for bit; and the reference against
the rules' formulas written out here. (The ratio: tests/test_lrp.py; the cuda twins:
tests/test_cuda_lrp.py.)"""

import numpy as np
import pytest
from conftest import both_kernel_builds
from hypothesis import given, settings
from hypothesis import strategies as st
from npxai.kernels.cpu import lrp as compiled

from npxai.reference import lrp as reference

dtypes = st.sampled_from([np.float32, np.float64])
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


def draw(data, shape, dtype):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    a = rng.standard_normal(shape).astype(dtype)
    a[rng.random(shape) < 0.3] = 0  # exact zeros: where the sign selection differs
    return a


@settings(max_examples=30)
@given(shape=shapes, dtype=dtypes, sign=st.sampled_from(["positive", "negative"]), data=st.data())
@both_kernel_builds
def test_select_sign(shape, dtype, sign, data):
    r, z0 = draw(data, shape, dtype), draw(data, shape, dtype)
    expected = np.where(z0 > 0 if sign == "positive" else z0 < 0, r, 0)
    np.testing.assert_array_equal(reference.select_sign(r, z0, sign), expected)
    out = compiled.select_sign(r, z0, sign)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, reference.select_sign(r, z0, sign))


@settings(max_examples=30)
@given(shape=shapes, dtype=dtypes, coefficient=st.sampled_from([1.0, -1.0, 2.0, 0.25]),
       first=st.booleans(), data=st.data())  # fmt: skip
@both_kernel_builds
def test_accumulate(shape, dtype, coefficient, first, data):
    total, x, t = (draw(data, shape, dtype) for _ in range(3))
    expected = reference.accumulate(None if first else total.copy(), coefficient, x, t.copy())
    np.testing.assert_allclose(expected, (0 if first else total) + coefficient * x * t, rtol=1e-6)
    out = compiled.accumulate(None if first else total, coefficient, x, t)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    assert out is (t if first else total)  # in place, no new array


def test_accumulate_takes_a_broadcast_input():
    """ZBoxRule's bounds reach the step as ``np.broadcast_to`` views of the input's shape."""
    t = np.arange(6.0).reshape(2, 3)
    low = np.broadcast_to(np.float64(-2.0), t.shape)
    np.testing.assert_array_equal(compiled.accumulate(None, 1.0, low, t.copy()), -2 * t)


def test_the_compiled_functions_name_what_they_cannot_take():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="sign must be 'positive' or 'negative', got 'zero'"):
        compiled.select_sign(a, a, "zero")
    with pytest.raises(ValueError, match=r"select_sign: relevance float64 \(2, 3\) and z0 float32"):
        compiled.select_sign(a, a.astype(np.float32), "positive")
    with pytest.raises(ValueError, match=r"accumulate: x float64 \(6,\) and t float64 \(2, 3\)"):
        compiled.accumulate(None, 1.0, a.reshape(-1), a)
    with pytest.raises(ValueError, match=r"accumulate: total float32 \(2, 3\) and t float64"):
        compiled.accumulate(a.astype(np.float32), 1.0, a, a)


@settings(max_examples=20)
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_the_shared_functions_are_the_rules_formulas(shape, dtype, data):
    """modify, nonnegative, any_nonzero, stack: NumPy's one pass on both host backends."""
    x = draw(data, shape, dtype)
    np.testing.assert_array_equal(reference.modify(x, "minus_positive"), -np.maximum(x, 0))
    np.testing.assert_array_equal(reference.modify(x, "square"), x * x)
    assert reference.nonnegative(x) == all(v >= 0 for v in x.ravel())
    assert reference.nonnegative(np.abs(x))
    assert reference.any_nonzero(x) == any(v != 0 for v in x.ravel())
    if x.ndim >= 2:
        stacked = reference.stack([x, x[:, :1]], [2.0, -1.0])
        np.testing.assert_array_equal(stacked[:, : x.shape[1]], 2 * x)
        np.testing.assert_array_equal(stacked[:, x.shape[1] :], -x[:, :1])
    for name in ("modify", "nonnegative", "any_nonzero", "stack"):
        assert getattr(compiled, name) is getattr(reference, name)
    assert not reference.nonnegative(np.array([1.0, np.nan]))
