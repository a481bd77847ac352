"""Shared test helpers. torch is an oracle here only; npxai itself never imports it."""

import contextlib
import functools
import inspect
import os
from unittest import mock

# The CUDA kernels (kernels/cuda) run under Numba's CUDA simulator unless NPXAI_TEST_CUDA=device
# asks for the real GPU. Set before anything imports numba.
if os.environ.get("NPXAI_TEST_CUDA") != "device":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import npxai
from npxai import layers as L

torch.set_num_threads(1)

# CI draws the same examples every run (a red run must mean a change broke something); locally
# hypothesis draws new ones each time, and keeps failures in .hypothesis/ to replay them.
settings.register_profile(
    "npxai",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("npxai")


def both_kernel_builds(test):
    """For a hypothesis test with a ``data`` argument: each example draws whether the kernels run
    their parallel build or their serial twins (``kernels/cpu/threads.py``: outside the tests,
    calls estimated to take under 10 microseconds serially take the twins), so that both are
    held to what the test checks."""

    @functools.wraps(test)
    def run(*args, data, **kwargs):
        from npxai.kernels.cpu import threads

        serial_below = data.draw(st.sampled_from([0, 2**62]), label="threads.SERIAL_BELOW_NS")
        with mock.patch.object(threads, "SERIAL_BELOW_NS", serial_below):
            return test(*args, data=data, **kwargs)

    return run


#: Relative tolerance per dtype, as the issues state them.
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


@contextlib.contextmanager
def float64_default():
    """torch's default dtype float64 inside the block (Captum makes some tensors in it)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def relative_error(actual: np.ndarray, expected: np.ndarray, scale: float | None = None) -> float:
    """``max |actual - expected| / scale``, the scale being ``max |expected|`` unless given (give
    the size of the summed terms where a result is a cancellation of larger ones)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if scale is None:
        scale = np.abs(expected).max(initial=0.0)
    return float(np.abs(actual - expected).max(initial=0.0) / max(scale, 1e-300))


def assert_close(
    actual: np.ndarray, expected: np.ndarray, dtype: type, scale: float | None = None
) -> None:
    error = relative_error(actual, expected, scale)
    assert error <= TOLERANCE[dtype], f"relative error {error:.3e} > {TOLERANCE[dtype]:.0e}"


#: Relative tolerance of a compiled kernel against the reference, per dtype.
KERNEL_TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def assert_same(
    actual, expected: np.ndarray, scale: float | None = None, device: bool = False
) -> None:
    """A kernel's result against the reference: same shape and dtype, relative error ``max
    |actual - expected| / scale`` within :data:`KERNEL_TOLERANCE` (the scale is ``max |expected|``
    unless given: the size of the terms, where a result is a cancellation). ``device=True``:
    ``actual`` must be a device array (it is copied to the host here)."""
    if device:
        assert not isinstance(actual, np.ndarray) and hasattr(actual, "copy_to_host"), type(actual)
        actual = actual.copy_to_host()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if scale is None:
        scale = float(np.abs(expected.astype(np.float64)).max(initial=0.0))
    error = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
    error /= max(scale, 1e-300)
    assert error <= KERNEL_TOLERANCE[expected.dtype.type], f"relative error {error:.2e}"


def draw_array(data, shape, dtype, label="x"):
    """A standard-normal array of ``shape`` and ``dtype`` from a hypothesis-drawn seed."""
    seed = data.draw(st.integers(0, 2**31), label=f"seed of {label}")
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def public_functions(module) -> dict:
    """The public functions a module defines itself (imported helpers left out)."""
    return {
        name: f
        for name, f in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(f) and f.__module__ == module.__name__
    }


def torch_forward_and_vjp(module, x: np.ndarray, grad_y_seed: int = 0):
    """torch's output and input gradient for a random cotangent; returns (y, g, grad_x)."""
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    rng = np.random.default_rng(grad_y_seed)
    g = rng.standard_normal(tuple(yt.shape)).astype(x.dtype)
    yt.backward(torch.tensor(g))
    return yt.detach().numpy(), g, xt.grad.numpy()


def dense_matrix(layer, in_shape, ones=False):
    """A Linear's or Conv2d's linear map as a matrix, built with torch from unit vectors (independent
    of npxai's kernels);
    ``ones=True``: the map with every weight 1 (which inputs each output covers)."""
    n_in = int(np.prod(in_shape))
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
    weight = torch.tensor(np.ones_like(layer.weight) if ones else layer.weight, dtype=torch.float64)
    if isinstance(layer, L.Linear):
        out = basis @ weight.T
    else:
        top, _, left, _ = layer.explicit_padding()
        out = torch.nn.functional.conv2d(
            basis, weight, None, layer.stride, (top, left), layer.dilation, layer.groups
        )
    return out.reshape(n_in, -1).T.numpy(), tuple(out.shape[1:])


def bias_free_relu_net(seed: int, width: int = 4) -> npxai.Sequential:
    """A small bias-free ReLU network for 8x8 inputs with 2 channels, 3 outputs."""
    npxai.manual_seed(seed)
    return npxai.Sequential(
        L.Conv2d(2, 4, 3, padding=1, bias=False), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(4, width, 3, padding=1, bias=False), L.ReLU(), L.AvgPool2d(2),
        L.Flatten(), L.Linear(4 * width, 6, bias=False), L.ReLU(), L.Linear(6, 3, bias=False),
    )  # fmt: skip


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def conformance_suite(tmp_path_factory):
    """The conformance suite, exported once per test session (``npxai.conformance.suite``)."""
    from npxai.conformance.suite import Suite, export

    return Suite(export(tmp_path_factory.mktemp("conformance") / "suite"))
