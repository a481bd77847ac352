"""``kernels/cpu/blas.matmul``: NumPy's product, split between npxai's threads, with the BLAS
thread count the caller had restored afterwards."""

from unittest import mock

import numpy as np
import pytest
from conftest import assert_same, draw_array
from hypothesis import given
from hypothesis import strategies as st
from npxai.kernels.cpu import blas


@given(
    stack=st.sampled_from([(), (1,), (2,), (5,)]),
    stack_b=st.booleans(),
    m=st.integers(1, 40),
    k=st.integers(1, 30),
    n=st.integers(1, 40),
    path=st.sampled_from([(0, 0), (0, 2**62), (2**62, 2**62)]),
    transposed=st.booleans(),
    dtype=st.sampled_from([np.float64, np.float32]),
    data=st.data(),
)
def test_matmul_is_numpys_product(stack, stack_b, m, k, n, path, transposed, dtype, data):
    """Stacks on ``a`` or ``b`` or both, a transposed view as ``b`` (Linear's ``W.T``), into a
    fresh array or ``out``; each path (``path``: the two thresholds): split (along the stack, the
    rows or the columns), on one BLAS thread, or NumPy's as it is."""
    a = draw_array(data, (*stack, m, k), dtype, "a")
    b = draw_array(data, (n, k), dtype, "b").T if transposed else draw_array(data, (k, n), dtype)
    if stack_b and stack:
        b = np.stack([b] * stack[0])
    expected = np.matmul(a, b)
    one_thread, split_from = path
    with mock.patch.multiple(blas, OPENBLAS_ONE_THREAD=one_thread, SPLIT_MIN_MACS=split_from):
        assert_same(blas.matmul(a, b), expected)
        out = np.full_like(expected, np.nan)
        assert blas.matmul(a, b, out=out) is out
    assert_same(out, expected)


@pytest.mark.skipif(not blas.CONTROLLED, reason="NumPy's BLAS is not an OpenBLAS npxai controls")
def test_matmul_restores_the_callers_blas_threads():
    """The thread count the caller set is back after a product (split or not)."""
    setter = blas._SETTER
    previous = setter(3)
    try:
        for split_from in (0, 2**62):
            with mock.patch.multiple(blas, OPENBLAS_ONE_THREAD=0, SPLIT_MIN_MACS=split_from):
                blas.matmul(np.ones((64, 64)), np.ones((64, 64)))
            assert setter(3) == 3
    finally:
        setter(previous)


@pytest.mark.skipif(not blas.CONTROLLED, reason="NumPy's BLAS is not an OpenBLAS npxai controls")
def test_overlapping_products_restore_the_callers_blas_threads():
    """Products running at once in several threads: the last to finish restores the setting
    the first found (one restore each would leave the one-thread setting behind)."""
    import threading

    setter = blas._SETTER
    previous = setter(3)
    a = np.ones((64, 64))

    def products():
        for _ in range(50):
            blas.matmul(a, a)

    try:
        with mock.patch.multiple(blas, OPENBLAS_ONE_THREAD=0, SPLIT_MIN_MACS=0):
            threads = [threading.Thread(target=products) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert setter(3) == 3
    finally:
        setter(previous)


def test_matmul_in_a_forked_child():
    """A child forked after a split product has the pool but not its threads: it makes its own."""
    import multiprocessing

    a = np.ones((64, 64))
    with mock.patch.multiple(blas, OPENBLAS_ONE_THREAD=0, SPLIT_MIN_MACS=0):
        blas.matmul(a, a)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_split_product, (a,)).get(timeout=60)
    np.testing.assert_array_equal(result, a @ a)


def _split_product(a: np.ndarray) -> np.ndarray:
    with mock.patch.multiple(blas, OPENBLAS_ONE_THREAD=0, SPLIT_MIN_MACS=0):
        return blas.matmul(a, a)


def test_matmul_splits_into_the_callers_thread_count():
    """``numba.set_num_threads`` in the calling thread decides the parts (1: no split)."""
    import numba

    a = np.ones((64, 64))
    calls = mock.Mock(wraps=blas._parts)
    previous = numba.get_num_threads()
    try:
        with (
            mock.patch.multiple(blas, OPENBLAS_ONE_THREAD=0, SPLIT_MIN_MACS=0),
            mock.patch.object(blas, "_parts", calls),
        ):
            numba.set_num_threads(1)
            np.testing.assert_array_equal(blas.matmul(a, a), a @ a)
            assert calls.call_count == 0
            if numba.config.NUMBA_NUM_THREADS > 1:
                numba.set_num_threads(2)
                np.testing.assert_array_equal(blas.matmul(a, a), a @ a)
                assert calls.call_args.args[3] == 2
    finally:
        numba.set_num_threads(previous)
