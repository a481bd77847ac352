"""Heatmaps: known attributions give known colours; PNG files open with the right size."""

import matplotlib
import numpy as np
import pytest
from PIL import Image

import npxai
from npxai.heatmaps import reduce_channels, scale_maps


def test_centered_diverging_preset_colours():
    a = np.array([[[[-2.0, 0.0, 2.0], [1.0, -1.0, 0.0]]]])  # (1, 1, 2, 3)
    rgb = npxai.heatmap(a, "attribution")
    assert rgb.shape == (1, 2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 1].tolist() == [255, 255, 255]  # zero: white
    assert rgb[0, 0, 2].tolist() == [255, 0, 0]  # positive maximum: red, bwr's top colour
    assert rgb[0, 0, 0].tolist() == [0, 0, 255]  # negative extreme: blue
    assert rgb[0, 1, 0][0] == 255 and rgb[0, 1, 0][2] < 255  # half way to red
    assert rgb[0, 1, 1][2] == 255 and rgb[0, 1, 1][0] < 255  # half way to blue


def test_extrema_sequential_preset_uses_the_maps_end_colours():
    a = np.zeros((1, 3, 2, 2))
    a[0, :, 0, 0] = [3.0, 4.0, 0.0]  # norm 5: the maximum
    rgb = npxai.heatmap(a, "sensitivity")
    inferno = matplotlib.colormaps["inferno"]
    top = (np.array(inferno(1.0)[:3]) * 255).round().astype(int).tolist()
    bottom = (np.array(inferno(0.0)[:3]) * 255).round().astype(int).tolist()
    assert rgb[0, 0, 0].tolist() == top and rgb[0, 1, 1].tolist() == bottom


def test_channel_reductions_and_scalings():
    a = np.array([[[[1.0]], [[-2.0]], [[2.0]]]])  # (1, 3, 1, 1)
    assert reduce_channels(a, "sum").item() == 1.0
    assert reduce_channels(a, "norm").item() == 3.0
    assert reduce_channels(a, "maxabs").item() == 2.0
    assert reduce_channels(a, "sumabs").item() == 5.0
    m = np.array([[[-4.0, 0.0, 2.0]], [[0.0, 0.0, 0.0]]])
    np.testing.assert_allclose(scale_maps(m, "centered"), [[[0.0, 0.5, 0.75]], [[0.5, 0.5, 0.5]]])
    np.testing.assert_allclose(scale_maps(m, "extrema"), [[[0.0, 4 / 6, 1.0]], [[0.0, 0.0, 0.0]]])


def test_explanations_pick_their_preset_and_gradcam_overlays_the_input():
    model = npxai.models.lenet(input_size=8)
    x = np.random.default_rng(0).random((2, 1, 8, 8))
    cam = npxai.GradCAM(model, "conv2")(x)
    rgb = npxai.heatmap(cam)
    plain = npxai.heatmap(cam.extras["upsampled"], "sensitivity", reduce="sum", cmap="jet")
    gray = (x - x.reshape(2, -1).min(1)[:, None, None, None]) / np.ptp(x.reshape(2, -1), 1)[
        :, None, None, None
    ]
    expected = (0.5 * plain + 0.5 * np.repeat(gray.transpose(0, 2, 3, 1), 3, axis=3) * 255).round()
    np.testing.assert_array_equal(rgb, expected.astype(np.uint8))
    ixg = npxai.InputTimesGradient(model)(x)
    np.testing.assert_array_equal(npxai.heatmap(ixg), npxai.heatmap(ixg.attribution, "attribution"))


def test_save_heatmap_writes_a_png_of_the_right_size(tmp_path):
    model = npxai.models.lenet(input_size=12)
    e = npxai.Gradient(model)(np.random.default_rng(1).random((3, 1, 12, 12)))
    npxai.save_heatmap(e, tmp_path / "g.png", sample=2)
    with Image.open(tmp_path / "g.png") as image:
        assert image.format == "PNG" and image.size == (12, 12) and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), npxai.heatmap(e)[2])


def test_bad_heatmap_options_are_named():
    a = np.ones((1, 1, 2, 2))
    with pytest.raises(ValueError, match="unknown heatmap preset 'hot'"):
        npxai.heatmap(a, "hot")
    with pytest.raises(ValueError, match="unknown channel reduction 'mean'"):
        npxai.heatmap(a, reduce="mean")
    with pytest.raises(ValueError, match="unknown scaling 'log'"):
        npxai.heatmap(a, scale="log")
    with pytest.raises(ValueError, match="unknown matplotlib colormap 'nope'"):
        npxai.heatmap(a, cmap="nope")
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\), got \(2, 2\)"):
        npxai.heatmap(np.ones((2, 2)))
    with pytest.raises(ValueError, match="a CRP explanation: draw it with concept_grid"):
        npxai.heatmap(np.ones((2, 3, 1, 4, 4)))
    with pytest.raises(ValueError, match="sample 3 is out of range for a batch of 1"):
        npxai.save_heatmap(a, "/tmp/unused.png", sample=3)
