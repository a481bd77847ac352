"""Conv2d's asymmetric padding ``((top, bottom), (left, right))``: forward pass and input VJP
against torch's ``ZeroPad2d`` followed by an unpadded ``Conv2d`` (on both CPU backends), LRP
against the same model run on an explicitly zero-padded input, and the argument's errors."""

import numpy as np
import pytest
import torch
from conftest import TORCH_DTYPE, assert_close, torch_forward_and_vjp
from hypothesis import assume, given
from hypothesis import strategies as st

import npxai
from npxai import composites
from npxai import layers as L

dtypes = st.sampled_from([np.float64, np.float32])


@given(data=st.data(), dtype=dtypes)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_asymmetric_padding_against_torch_zero_pad(backend, data, dtype):
    groups = data.draw(st.integers(1, 2), label="groups")
    cin, cout = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    kernel = data.draw(st.tuples(st.integers(1, 5), st.integers(1, 4)), label="kernel")
    stride = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 2)), label="stride")
    dilation = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), label="dilation")
    top, bottom, left, right = data.draw(st.tuples(*[st.integers(0, 3)] * 4), label="padding")
    size = data.draw(st.tuples(st.integers(1, 9), st.integers(1, 9)), label="size")
    assume(size[0] + top + bottom >= dilation[0] * (kernel[0] - 1) + 1)
    assume(size[1] + left + right >= dilation[1] * (kernel[1] - 1) + 1)
    conv = torch.nn.Conv2d(cin, cout, kernel, stride, 0, dilation, groups)
    theirs = torch.nn.Sequential(torch.nn.ZeroPad2d((left, right, top, bottom)), conv)
    theirs = theirs.to(TORCH_DTYPE[dtype])
    ours = L.Conv2d(cin, cout, kernel, stride, ((top, bottom), (left, right)), dilation, groups)
    assert ours.explicit_padding() == (top, bottom, left, right)
    ours.load_state_dict({k: v.detach().numpy() for k, v in conv.state_dict().items()})
    seed = data.draw(st.integers(0, 2**31), label="seed")
    x = np.random.default_rng(seed).standard_normal((2, cin, *size)).astype(dtype)
    y, g, grad_x = torch_forward_and_vjp(theirs, x)
    our_y = ours(x, backend=backend)
    assert_close(our_y, y, dtype)
    assert_close(ours.vjp(x, our_y, g, backend=backend), grad_x, dtype)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("composite", [composites.EpsilonPlus, composites.EpsilonGammaBox])
def test_lrp_with_asymmetric_padding_equals_lrp_on_the_padded_input(backend, composite):
    """Zero padding inside the convolution or in the input gives the same relevance on the
    input's own pixels (for ZBox, with bounds that are zero on the explicit padding: inside the
    convolution, the bounds are padded with zeros as the input is)."""
    npxai.manual_seed(3)
    padded = npxai.Sequential(
        L.Conv2d(2, 4, 3, stride=2, padding=((0, 1), (1, 2))), L.ReLU(),
        L.Conv2d(4, 4, 3, padding=((1, 1), (0, 1)), groups=2), L.ReLU6(),
        L.AdaptiveAvgPool2d(1), L.Flatten(), L.Linear(4, 3),
    )  # fmt: skip
    explicit = npxai.Sequential(
        L.Conv2d(2, 4, 3, stride=2), L.ReLU(),
        L.Conv2d(4, 4, 3, padding=((1, 1), (0, 1)), groups=2), L.ReLU6(),
        L.AdaptiveAvgPool2d(1), L.Flatten(), L.Linear(4, 3),
    )  # fmt: skip
    explicit.load_state_dict(padded.state_dict())
    x = np.random.default_rng(4).standard_normal((2, 2, 9, 8))
    pad = ((0, 0), (0, 0), (0, 1), (1, 2))
    x_padded = np.pad(x, pad)
    box, padded_box = {}, {}
    if composite is composites.EpsilonGammaBox:
        box = {"low": -3.0, "high": 3.0}
        padded_box = {k: np.pad(np.full_like(x, v), pad) for k, v in box.items()}
    ours = npxai.LRP(padded, composite(**box), backend=backend)(x, target=1)
    reference = npxai.LRP(explicit, composite(**padded_box), backend=backend)(x_padded, target=1)
    np.testing.assert_allclose(padded(x), explicit(x_padded), rtol=1e-12)
    np.testing.assert_allclose(
        ours.attribution, reference.attribution[:, :, :9, 1:9], rtol=1e-10, atol=1e-12
    )
    assert np.abs(ours.attribution).max() > 0


@pytest.mark.parametrize(
    "padding, message",
    [
        ((0, 1, 0, 1), r"a flat 4-tuple is ambiguous .*\(left, right, top, bottom\)"),
        (((0, 1), (0, -1)), r"padding must be .*\(\(top, bottom\), \(left, right\)\)"),
        (((0, 1), (1,)), "padding must be"),
        (((0, 1), 2), "padding must be"),
        (-1, "padding must be"),
        (1.5, "padding must be"),
    ],
)
def test_bad_padding_is_named(padding, message):
    with pytest.raises(ValueError, match=message):
        L.Conv2d(1, 1, 3, padding=padding)
