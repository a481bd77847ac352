"""Occlusion against its definition evaluated with torch in float64 (1e-12) and against Captum's
``Occlusion`` (1e-6: Captum 0.9.0 in float64, with torch's default dtype float64 too, is not the
float64 definition, a float32 step inside it), on a CNN given as
an npxai model, a torch module and a plain callable, hypothesis-drawn windows, strides,
baselines, targets and batch sizes; on a linear model, written out position by position; its
errors by name; against Zennit 0.5.1's ``Occlusion`` where the two definitions meet."""

import itertools
import math

import numpy as np
import pytest
import torch
from captum.attr import Occlusion as CaptumOcclusion
from conftest import float64_default, relative_error
from hypothesis import given, settings
from hypothesis import strategies as st

import npxai


def torch_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 5, 3),
    ).double().eval()  # fmt: skip


@settings(max_examples=15, deadline=None)
@given(data=st.data(), batch_size=st.integers(1, 40), backend=st.sampled_from(["numpy", "numba"]))
def test_occlusion_equals_captums(data, batch_size, backend):
    net = torch_cnn()
    window = tuple(
        data.draw(st.integers(1, d), label=f"window {i}") for i, d in enumerate((3, 8, 10))
    )
    strides = tuple(data.draw(st.integers(1, k), label=f"stride {i}") for i, k in enumerate(window))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    x = rng.standard_normal((2, 3, 8, 10))
    baseline = data.draw(st.sampled_from(["zero", "number", "sample"]), label="baseline")
    b = {"zero": 0.0, "number": 0.5, "sample": rng.standard_normal((3, 8, 10))}[baseline]
    target = data.draw(st.sampled_from([None, 1, [0, 2]]), label="target")
    theirs_target = net(torch.tensor(x)).argmax(1) if target is None else target
    with float64_default():
        expected = CaptumOcclusion(net).attribute(
            torch.tensor(x), sliding_window_shapes=window, strides=strides,
            baselines=torch.tensor(b) if baseline == "sample" else b, target=theirs_target,
        ).numpy()  # fmt: skip
    definition = torch_occlusion(net, x, window, strides, b, theirs_target)
    assert relative_error(expected, definition) < 1e-6
    model = npxai.from_torch(net)
    for explained in (model, net, lambda a: model(a, backend=backend)):
        ours = npxai.Occlusion(explained, window, strides, b, batch_size, backend)(x, target)
        assert ours.attribution.dtype == np.float64
        assert relative_error(ours.attribution, definition) < 1e-12


def torch_occlusion(net, x, window, strides, baseline, target) -> np.ndarray:
    """The definition, with torch, window by window: ``sum_w (f(x) - f(x_w)) M_w / sum_w M_w``
    over ``ceil((D - k) / s) + 1`` positions per axis, the last cut at the edge."""
    xt = torch.tensor(x)
    b = torch.broadcast_to(torch.as_tensor(baseline, dtype=torch.float64), xt.shape)
    rows = torch.arange(len(x))
    target = torch.as_tensor(target).expand(len(x))
    total, count = torch.zeros_like(xt), torch.zeros(x.shape[1:], dtype=torch.float64)
    counts = [
        math.ceil((d - k) / s) + 1 for d, k, s in zip(x.shape[1:], window, strides, strict=True)
    ]
    with torch.no_grad():
        reference = net(xt)[rows, target]
        for index in itertools.product(*map(range, counts)):
            mask = torch.zeros(x.shape[1:], dtype=torch.float64)
            mask[
                tuple(
                    slice(i * s, i * s + k) for i, k, s in zip(index, window, strides, strict=True)
                )
            ] = 1
            drop = reference - net(xt * (1 - mask) + b * mask)[rows, target]
            total += drop[:, None, None, None] * mask
            count += mask
    return (total / count).numpy()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_occlusion_of_tiling_windows_is_zennits_with_the_window_occluded(backend):
    """Zennit 0.5.1's ``Occlusion`` (Zennit 1.0 is not on PyPI) is another quantity: its default
    keeps only the window, and it sums the score of each occluded input over the window without
    a difference or an average, its windows wrapping round the edges (``mask.roll``). With the
    window occluded instead (``occlude_independent(..., invert=True)``) and windows that tile the
    input (stride = window, sizes divisible), each entry is in one window and its map is
    ``f(x_w)``: npxai's is ``f(x) - f(x_w)``, that map subtracted from the output."""
    from functools import partial

    from zennit.attribution import Occlusion as ZennitOcclusion
    from zennit.attribution import occlude_independent

    net = torch_cnn()
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 10))
    occlude = partial(occlude_independent, fill_fn=torch.zeros_like, invert=True)
    zennit = ZennitOcclusion(net, occlusion_fn=occlude, window=(3, 4, 5), stride=(3, 4, 5))
    one_hot = torch.eye(3, dtype=torch.float64)[[2, 0]]
    output, theirs = zennit(torch.tensor(x), lambda out: out * one_hot)  # the score, a function
    f_x = (output * one_hot).sum(1).detach().numpy()[:, None, None, None]
    ours = npxai.Occlusion(npxai.from_torch(net), (3, 4, 5), (3, 4, 5), backend=backend)(x, [2, 0])
    np.testing.assert_allclose(ours.attribution, f_x - theirs.numpy(), rtol=1e-12, atol=1e-12)
    assert ours.extras["positions"] == 2 * 2


def test_occlusion_of_a_linear_model_is_its_definition():
    """``f(x) = w . x``: a window's drop is ``w . ((x - b) M_w)``, averaged over the windows
    covering each entry, written out position by position."""
    w = np.random.default_rng(1).standard_normal((1, 7))
    x, b = np.random.default_rng(2).standard_normal((1, 7)), 0.25

    def f(a):
        return a @ w.T

    ours = npxai.Occlusion(f, (3,), 2, b)(x, target=0)
    total, count = np.zeros(7), np.zeros(7)
    for start in (0, 2, 4):  # ceil((7 - 3) / 2) + 1 = 3 positions
        mask = np.zeros(7)
        mask[start : start + 3] = 1
        total += (w[0] * (x[0] - b) * mask).sum() * mask
        count += mask
    np.testing.assert_allclose(ours.attribution[0], total / count, rtol=1e-12)
    assert ours.extras["positions"] == 3

    class Dot(torch.nn.Module):  # a torch module of the user's own: converted, not called
        def forward(self, a):
            return a @ torch.tensor(w.T)

    with pytest.raises(npxai.ConversionError, match="cannot convert the module.*input_shape="):
        npxai.Occlusion(Dot(), (3,))


def test_occlusion_refuses_bad_input_by_name():
    model = npxai.from_torch(torch_cnn())
    x = np.zeros((1, 3, 8, 10))
    with pytest.raises(ValueError, match=r"the window \(3, 9, 3\) is larger than a sample"):
        npxai.Occlusion(model, (3, 9, 3))(x)
    with pytest.raises(ValueError, match="stride 3 exceeds the window's 2 along axis 2"):
        npxai.Occlusion(model, (3, 2, 2), (1, 3, 1))(x)
    with pytest.raises(ValueError, match=r"the window \(2, 2\) has 2 axes, a sample of the input"):
        npxai.Occlusion(model, (2, 2))(x)
    with pytest.raises(ValueError, match=r"baselines of shape \(3, 7, 10\) do not fit the input"):
        npxai.Occlusion(model, (1, 2, 2), baselines=np.zeros((3, 7, 10)))(x)
    with pytest.raises(ValueError, match="window must be a positive int or one per axis"):
        npxai.Occlusion(model, (0, 2, 2))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        npxai.Occlusion(model, (1, 2, 2), batch_size=0)
    with pytest.raises(ValueError, match="baselines must be finite numbers"):
        npxai.Occlusion(model, (1, 2, 2), baselines=np.nan)
    with pytest.raises(TypeError, match="needs an npxai Module, a torch.nn.Module or a callable"):
        npxai.Occlusion("model", (1, 2, 2))
    with pytest.raises(ValueError, match=r"must return scores of shape \(N, K\) = \(1, K\)"):
        npxai.Occlusion(lambda a: a.sum(), (1, 2, 2))(x)
    with pytest.raises(ValueError, match="target 5 is out of range"):
        npxai.Occlusion(model, (1, 2, 2))(x, target=5)
