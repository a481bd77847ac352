"""npxai.metrics.localisation (pointing_game, relevance_mass_accuracy, relevance_rank_accuracy):
against Quantus 0.6.0 on the same torch model, inputs, attributions and masks, against an
independent NumPy computation over shapes, and hand-checked cases."""

import warnings

import numpy as np
import pytest
import quantus
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npxai.metrics.localisation import (
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)

N, C, H, W = 5, 3, 6, 7
METRICS = [pointing_game, relevance_mass_accuracy, relevance_rank_accuracy]
QUANTUS = {
    pointing_game: quantus.PointingGame,
    relevance_mass_accuracy: quantus.RelevanceMassAccuracy,
    relevance_rank_accuracy: quantus.RelevanceRankAccuracy,
}


@pytest.fixture(autouse=True)
def quiet():
    # Quantus warns about its parameterisation on every call, also with disable_warnings=True.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def torch_net(channels=C):
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(channels, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(2 * H * W, 3)).eval()


def data(dtype=np.float64, channels=1, x_channels=C, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, x_channels, H, W)).astype(dtype)
    a = rng.standard_normal((N, channels, H, W)).astype(dtype)
    mask = rng.random((N, 1, H, W)) < 0.3
    return x, a, mask, np.array([0, 1, 2, 1, 0])


def quantus_scores(metric, net, x, a, mask, y, **kwargs):
    score = QUANTUS[metric](disable_warnings=True, **kwargs)
    s = mask.astype(np.float64)
    result = score(model=net, x_batch=x, y_batch=y, a_batch=a.copy(), s_batch=s)
    return np.asarray(result, dtype=np.float64)


def assert_scores(metric, ours, expected, a):
    """Equal; the mass accuracy to rounding: its signed total can cancel, the rounding error
    grows with the condition number sum |a| / |sum a|."""
    if metric is not relevance_mass_accuracy:
        np.testing.assert_array_equal(ours, expected)
        return
    flat = a.reshape(len(a), -1)
    condition = np.abs(flat).sum(axis=1) / np.abs(flat.sum(axis=1))
    error = np.abs(ours - expected)
    assert np.all(error <= 1e-15 * flat.shape[1] * condition), (ours, expected)


def independent(metric, a, mask, abs):
    """The metric per sample with plain NumPy: the mask repeated over the attribution's
    channels, no ties (continuous random attributions)."""
    mask = np.broadcast_to(mask, a.shape)
    scores = []
    for values, region in zip(np.abs(a) if abs else a, mask, strict=True):
        values, region = values.ravel(), region.ravel().astype(bool)
        if metric is pointing_game:
            scores.append(float(region[np.argmax(values)]))
        elif metric is relevance_mass_accuracy:
            scores.append(values[region].sum() / values.sum())
        else:
            top = set(np.argsort(values)[::-1][: region.sum()].tolist())
            scores.append(len(top & set(np.flatnonzero(region).tolist())) / region.sum())
    return np.array(scores)


@pytest.mark.parametrize("abs", [False, True])
@pytest.mark.parametrize("x_channels", [1, C])
@pytest.mark.parametrize("metric", METRICS)
def test_equals_quantus(metric, x_channels, abs):
    net = torch_net(x_channels)
    x, a, mask, y = data(x_channels=x_channels)
    ours = metric(net, x, a, y, mask=mask, abs=abs)
    assert ours.dtype == np.float64 and ours.shape == (N,)
    for normalise in (True, False):  # Quantus's normalise does not change the values
        expected = quantus_scores(metric, net, x, a, mask, y, abs=abs, normalise=normalise)
        assert_scores(metric, ours, expected, a)
    if metric is pointing_game:
        assert 0 < ours.sum() < N  # hits and misses both
    # The integer mask Quantus takes (0/1) gives the same as the bool one.
    np.testing.assert_array_equal(metric(None, x, a, mask=mask.astype(np.int64), abs=abs), ours)


@pytest.mark.parametrize("abs", [False, True])
@pytest.mark.parametrize("metric", METRICS)
def test_channel_attribution_with_a_pixel_mask_equals_quantus_on_the_repeated_mask(metric, abs):
    # Quantus takes a mask (N, 1, H, W) only, for an attribution of as many entries: lay the
    # channels of an attribution (N, C, H, W) out as rows, (N, 1, C H, W), and repeat the mask.
    x, a, mask, y = data(channels=C)
    ours = metric(None, x, a, mask=mask, abs=abs)
    rows = a.reshape(N, 1, C * H, W)
    repeated = np.repeat(mask, C, axis=1).reshape(N, 1, C * H, W)
    expected = quantus_scores(metric, torch_net(1), rows, rows, repeated, y, abs=abs)
    assert_scores(metric, ours, expected, a)
    # A channel mask (N, C, H, W) equal on all channels is the same.
    channel_mask = np.repeat(mask, C, axis=1)
    np.testing.assert_array_equal(metric(None, x, a, mask=channel_mask, abs=abs), ours)


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 3),
    channels=st.integers(1, 3),
    height=st.integers(1, 5),
    width=st.integers(2, 5),
    pixel_mask=st.booleans(),
    abs=st.booleans(),
    data=st.data(),
)
def test_against_numpy_over_shapes(n, channels, height, width, pixel_mask, abs, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    a = rng.standard_normal((n, channels, height, width))
    x = np.ones((n, channels, height, width), np.float32)
    mask = rng.random((n, 1 if pixel_mask else channels, height, width)) < 0.4
    mask[:, :, 0, 0] = True  # every sample has a region
    if not abs:
        a = a + 0.1  # positive totals, away from 0
        a[~np.broadcast_to(mask, a.shape)] = np.abs(a[~np.broadcast_to(mask, a.shape)])
    for metric in METRICS:
        ours = metric(None, x, a, mask=mask, abs=abs)
        assert_scores(metric, ours, independent(metric, a, mask, abs), a)


def test_pointing_game_hand_checked():
    x = np.zeros((1, 1, 4, 4))
    a = np.arange(16.0).reshape(1, 1, 4, 4) - 8.0  # the maximum (7) at the last pixel
    at_peak = np.zeros((1, 1, 4, 4), bool)
    at_peak[..., 3, 3] = True
    assert pointing_game(None, x, a, mask=at_peak)[0] == 1.0
    assert pointing_game(None, x, a, mask=~at_peak)[0] == 0.0
    # abs=True: the largest |a| is -8, the first pixel.
    first = np.zeros_like(at_peak)
    first[..., 0, 0] = True
    assert pointing_game(None, x, a, mask=first)[0] == 0.0
    assert pointing_game(None, x, a, mask=first, abs=True)[0] == 1.0
    # Ties: a hit if any of the largest entries is inside.
    tied = np.zeros_like(a)
    tied[..., 1, 2] = tied[..., 3, 0] = 5.0
    inside = np.zeros_like(at_peak)
    inside[..., 3, 0] = True
    assert pointing_game(None, x, tied, mask=inside)[0] == 1.0
    # weighted: a hit scores 1 - |M| / n, a miss 0.
    region = np.zeros_like(at_peak)
    region[..., 2:, 2:] = True  # 4 of 16 pixels, holding the peak
    assert pointing_game(None, x, a, mask=region, weighted=True)[0] == 1.0 - 4 / 16
    assert pointing_game(None, x, a, mask=first, weighted=True)[0] == 0.0


def test_mass_and_rank_accuracy_of_the_top_k_pixels():
    x, a, _, _ = data()
    k = 9
    order = np.argsort(np.abs(a).reshape(N, -1), axis=1)[:, ::-1]
    top = np.zeros((N, H * W), bool)
    top[np.arange(N)[:, None], order[:, :k]] = True
    top = top.reshape(N, 1, H, W)
    np.testing.assert_array_equal(relevance_rank_accuracy(None, x, a, mask=top, abs=True), 1.0)
    share = np.sort(np.abs(a).reshape(N, -1), axis=1)[:, ::-1]
    share = share[:, :k].sum(axis=1) / share.sum(axis=1)
    ours = relevance_mass_accuracy(None, x, a, mask=top, abs=True)
    np.testing.assert_allclose(ours, share, rtol=1e-14, atol=0)
    # The complement (n - k entries): its top n - k miss the k largest, the rest of the mass.
    n = H * W
    ours = relevance_rank_accuracy(None, x, a, mask=~top, abs=True)
    np.testing.assert_array_equal(ours, (n - 2 * k) / (n - k))
    np.testing.assert_allclose(
        relevance_mass_accuracy(None, x, a, mask=~top, abs=True), 1.0 - share, rtol=1e-13, atol=0
    )


def test_hand_checked_small():
    x = np.zeros((1, 4))
    a = np.array([[3.0, -1.0, 2.0, 0.0]])
    mask = np.array([[True, True, False, False]])
    assert relevance_mass_accuracy(None, x, a, mask=mask)[0] == (3.0 - 1.0) / 4.0
    assert relevance_mass_accuracy(None, x, a, mask=mask, abs=True)[0] == 4.0 / 6.0
    # K = 2: the two largest are 3 and 2 (one inside); by magnitude 3 and 2 as well.
    assert relevance_rank_accuracy(None, x, a, mask=mask)[0] == 0.5
    # Ties at the K-th value go to the lower index (a stable sort).
    tied = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert relevance_rank_accuracy(None, x, tied, mask=np.array([[1, 0, 0, 0]]))[0] == 1.0
    assert relevance_rank_accuracy(None, x, tied, mask=np.array([[0, 1, 0, 0]]))[0] == 0.0


@pytest.mark.parametrize("metric", METRICS)
def test_model_runs_once_or_not_at_all(metric):
    x, a, mask, y = data(np.float32)
    net = torch_net()
    calls = []

    def model(inputs):
        calls.append(len(inputs))
        return net(torch.from_numpy(inputs)).detach().numpy()

    with_model = metric(model, x, a, y, mask=mask)
    assert calls == [N]
    np.testing.assert_array_equal(metric(None, x, a, mask=mask), with_model)
    assert calls == [N]


@pytest.mark.parametrize("metric", METRICS)
def test_float32_and_float64(metric):
    x, a, mask, _ = data(np.float32)
    ours = metric(None, x, a, mask=mask)
    assert ours.dtype == np.float64
    expected = metric(None, x.astype(np.float64), a.astype(np.float64), mask=mask)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("metric", METRICS)
def test_bad_input(metric):
    x, a, mask, _ = data(channels=1)
    name = metric.__name__
    with pytest.raises(TypeError, match="mask"):
        metric(None, x, a)  # the mask is required
    with pytest.raises(ValueError, match=rf"{name}: mask of shape \(5, 3, 6, 7\) does not fit"):
        metric(None, x, a, mask=np.ones((N, C, H, W), bool))  # a channel mask, summed map
    with pytest.raises(ValueError, match=rf"{name}: mask of shape \(4, 1, 6, 7\) does not fit"):
        metric(None, x, a, mask=mask[:4])
    with pytest.raises(ValueError, match=rf"{name}: mask of shape \(5, 6, 7\) does not fit"):
        metric(None, x, a, mask=mask[:, 0])
    with pytest.raises(ValueError, match=rf"{name}: mask must hold only 0 and 1 .*, got 0.5"):
        metric(None, x, a, mask=mask * 0.5)
    with pytest.raises(ValueError, match=rf"{name}: mask must hold only 0 and 1 .*, got nan"):
        metric(None, x, a, mask=np.where(mask, np.nan, 0.0))
    with pytest.raises(TypeError, match=rf"{name}: mask must be a bool or 0/1 array"):
        metric(None, x, a, mask=np.full(mask.shape, "a"))
    empty = mask.copy()
    empty[[1, 3]] = False
    with pytest.raises(ValueError, match=rf"{name}: mask of sample\(s\) \[1, 3\] has no positive"):
        metric(None, x, a, mask=empty)
    with pytest.raises(ValueError, match=rf"{name}: attribution of shape \(5, 2, 6, 7\) does not"):
        metric(None, x, np.ones((N, 2, H, W)), mask=mask)
    with pytest.raises(TypeError, match=rf"{name}: abs must be True or False"):
        metric(None, x, a, mask=mask, abs=None)


def test_bad_options():
    x, a, mask, _ = data()
    with pytest.raises(TypeError, match="pointing_game: weighted must be True or False"):
        pointing_game(None, x, a, mask=mask, weighted=1)
    zero_sum = a.copy()
    zero_sum[2] = 0.0
    with pytest.raises(
        ValueError, match=r"relevance_mass_accuracy: the attribution of sample\(s\) \[2\] sums to 0"
    ):
        relevance_mass_accuracy(None, x, zero_sum, mask=mask)
