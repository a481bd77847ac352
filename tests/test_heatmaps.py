"""Heatmaps: known attributions give known colours; outliers are clipped as Captum clips them;
overlays take either image layout; PNG files open with the right size."""

import matplotlib
import numpy as np
import pytest
from captum.attr._utils.visualization import _cumulative_sum_threshold, _normalize_attr
from PIL import Image

import npxai
from npxai.heatmaps import colorize, reduce_channels, scale_maps


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
    plain = npxai.heatmap(
        cam.extras["upsampled"], "sensitivity", reduce="sum", outlier_perc=0, cmap="jet"
    )
    gray = (x - x.reshape(2, -1).min(1)[:, None, None, None]) / np.ptp(x.reshape(2, -1), 1)[
        :, None, None, None
    ]
    expected = (0.5 * plain + 0.5 * np.repeat(gray.transpose(0, 2, 3, 1), 3, axis=3) * 255).round()
    np.testing.assert_array_equal(rgb, expected.astype(np.uint8))
    ixg = npxai.InputTimesGradient(model)(x)
    np.testing.assert_array_equal(npxai.heatmap(ixg), npxai.heatmap(ixg.attribution, "attribution"))


def test_one_outlier_pixel_no_longer_darkens_the_rest():
    maps = np.random.default_rng(2).random((1, 64, 64))  # sum about 2048
    maps[0, 10, 20] = 30.0  # 1.4% of sum |m|: under the 2% that saturate
    plain, clipped = scale_maps(maps, "extrema"), scale_maps(maps, "extrema", outlier_perc=2)
    assert (plain > 0.25).mean() == 1 / 64**2  # min-max: only the outlier is brighter than 1/4
    assert (clipped > 0.25).mean() > 0.7 and clipped[0, 10, 20] == 1.0
    a = np.repeat(maps[:, None], 3, axis=1)  # norm = sqrt(3) m: the same map, scaled
    rgb = npxai.heatmap(a, "sensitivity")  # the preset clips by default
    np.testing.assert_array_equal(rgb, colorize(clipped, "inferno"))
    assert (
        npxai.heatmap(a, "attribution") == npxai.heatmap(a, "attribution", outlier_perc=2)
    ).all()


@pytest.mark.parametrize("outlier_perc", [0.5, 2, 10])
def test_outlier_clipping_matches_captums_normalisation(outlier_perc):
    rng = np.random.default_rng(3)
    maps = rng.standard_t(2, size=(3, 20, 30))  # heavy tails: the clip matters
    zeroed = np.abs(maps)
    zeroed[:, 0, 0] = 0  # a zero pixel: extrema's minimum is 0, as in Captum's [0, 1] scaling
    centered = scale_maps(maps, "centered", outlier_perc)
    magnitude = scale_maps(zeroed, "extrema", outlier_perc)
    for i in range(len(maps)):  # Captum: one (H, W) map at a time; sign "all" gives [-1, 1]
        expected = _normalize_attr(maps[i], "all", outlier_perc)
        np.testing.assert_allclose(centered[i], (expected + 1) / 2)
        expected = _normalize_attr(zeroed[i], "absolute_value", outlier_perc)
        np.testing.assert_allclose(magnitude[i], expected)
        assert 0 < (expected == 1).mean() < 0.2  # some values saturate, most do not


def test_concept_grid_clips_each_map_or_the_sample_together():
    rng = np.random.default_rng(4)
    attribution = rng.standard_t(2, size=(1, 3, 2, 6, 6))
    e = npxai.Explanation(
        attribution, np.zeros((1, 4)), np.array([1]), "CRP", "attribution",
        {"channels": np.array([[4, 0, 2]]), "concept_relevance": np.ones((1, 3)),
         "concept_share": np.full((1, 3), 1 / 3), "layer": "0"},
    )  # fmt: skip
    maps = attribution[0].sum(axis=1)
    own = [_cumulative_sum_threshold(np.abs(m), 98) for m in maps]
    shared = _cumulative_sum_threshold(np.abs(maps), 98)
    for same_scale, tops in [(False, own), (True, [shared] * 3)]:
        figure = npxai.concept_grid(e, same_scale=same_scale)
        panels = [ax for ax in figure.axes if ax.images]  # a 2 x 2 grid, one spare
        for ax, m, top in zip(panels, maps, tops, strict=True):
            expected = colorize(0.5 + np.clip(m, -top, top) / (2 * top), "bwr")
            np.testing.assert_array_equal(ax.images[0].get_array(), expected)


def test_integrated_gradients_draws_signed_attributions():
    model = npxai.models.lenet(input_size=8)
    e = npxai.IntegratedGradients(model, n=4)(np.random.default_rng(5).random((2, 1, 8, 8)))
    assert e.heatmap_preset == "attribution"
    rgb = e.heatmap()
    np.testing.assert_array_equal(rgb, npxai.heatmap(e.attribution, "attribution"))
    positive, negative = e.attribution[:, 0] > 0, e.attribution[:, 0] < 0
    assert positive.any() and negative.any()
    assert (rgb[positive][:, 0] == 255).all() and (rgb[negative][:, 2] == 255).all()  # bwr


def test_explanation_methods_forward_to_the_functions(tmp_path):
    model = npxai.models.lenet(input_size=8)
    e = npxai.Gradient(model)(np.random.default_rng(6).random((2, 1, 8, 8)))
    np.testing.assert_array_equal(e.heatmap(), npxai.heatmap(e))
    options = {"reduce": "sum", "outlier_perc": 5, "cmap": "seismic"}
    np.testing.assert_array_equal(
        e.heatmap("attribution", **options), npxai.heatmap(e, "attribution", **options)
    )
    e.save_heatmap(tmp_path / "e.png", sample=1, cmap="viridis")
    with Image.open(tmp_path / "e.png") as image:
        np.testing.assert_array_equal(np.asarray(image), npxai.heatmap(e, cmap="viridis")[1])


def test_overlay_takes_images_in_either_layout():
    rng = np.random.default_rng(7)
    heat = rng.integers(0, 256, (2, 4, 5, 3)).astype(np.uint8)
    heat[:, 0, 0, :2] = [0, 255]  # each heatmap spans [0, 255]: as an image, its own scale
    first = rng.random((2, 3, 4, 5))  # (N, C, H, W)
    last = first.transpose(0, 2, 3, 1)  # (N, H, W, C)
    low, high = first.min(axis=(1, 2, 3)), first.max(axis=(1, 2, 3))
    scaled = (last - low[:, None, None, None]) / (high - low)[:, None, None, None] * 255
    expected = (0.25 * heat + 0.75 * scaled).round().astype(np.uint8)
    np.testing.assert_array_equal(npxai.overlay(heat, first, alpha=0.25), expected)
    np.testing.assert_array_equal(npxai.overlay(heat, last, alpha=0.25), expected)
    grey = npxai.overlay(heat, first[:, :1])  # one channel: repeated
    np.testing.assert_array_equal(grey, npxai.overlay(heat, np.repeat(first[:, :1], 3, axis=1)))
    np.testing.assert_array_equal(npxai.overlay(heat, heat), heat)  # a heatmap: channels-last
    square = rng.integers(0, 256, (1, 3, 3, 3)).astype(np.uint8)
    with pytest.raises(
        ValueError, match=r"cannot tell the layout .* \(1, 3, 3, 3\).*layout='NCHW'"
    ):
        npxai.overlay(square, square)
    np.testing.assert_array_equal(
        npxai.overlay(square, square, layout="NCHW"),
        npxai.overlay(square, square.transpose(0, 2, 3, 1), layout="NHWC"),
    )
    with pytest.raises(
        ValueError, match=r"\(N, 1 or 3, 4, 5\) or \(N, 4, 5, 1 or 3\).*\(2, 4, 5\)"
    ):
        npxai.overlay(heat, first[:, 0])
    with pytest.raises(
        ValueError, match=r"\(N, 4, 5, 1 or 3\) for 4 x 5 heatmaps, got \(2, 3, 4, 5\)"
    ):
        npxai.overlay(heat, first, layout="NHWC")
    with pytest.raises(ValueError, match="layout must be None, 'NCHW' or 'NHWC', got 'CHW'"):
        npxai.overlay(heat, first, layout="CHW")
    with pytest.raises(ValueError, match="overlay got 2 heatmaps but 1 images"):
        npxai.overlay(heat, first[:1])
    with pytest.raises(ValueError, match=r"RGB heatmaps of shape \(N, H, W, 3\), got \(4, 5, 3\)"):
        npxai.overlay(heat[0], first)
    with pytest.raises(ValueError, match="alpha must be in \\[0, 1\\], got 1.5"):
        npxai.overlay(heat, first, alpha=1.5)


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
    for bad in (-1, 100, float("nan"), "2", True):
        with pytest.raises(
            ValueError, match=f"outlier_perc must be a number in \\[0, 100\\), got {bad!r}"
        ):
            npxai.heatmap(a, outlier_perc=bad)
    with pytest.raises(ValueError, match="sample 3 is out of range for a batch of 1"):
        npxai.save_heatmap(a, "/tmp/unused.png", sample=3)


def test_patch_map_puts_each_token_on_its_patch():
    tokens = np.arange(2 * 5 * 3, dtype=np.float64).reshape(2, 5, 3)  # a class token, 2 x 2 grid
    maps = npxai.heatmaps.patch_map(tokens, 3)
    assert maps.shape == (2, 1, 6, 6)
    per_patch = tokens[:, 1:].sum(axis=2).reshape(2, 2, 2)
    for i in range(2):
        for j in range(2):
            assert (
                maps[:, 0, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3] == per_patch[:, i, j, None, None]
            ).all()
    assert (
        npxai.heatmaps.patch_map(tokens[:, 1:, 0], 1)[:, 0] == tokens[:, 1:, 0].reshape(2, 2, 2)
    ).all()
    with pytest.raises(ValueError, match="7 tokens are neither a square grid"):
        npxai.heatmaps.patch_map(np.zeros((1, 7)), 2)
    with pytest.raises(ValueError, match="patch_size must be a positive int"):
        npxai.heatmaps.patch_map(np.zeros((1, 4)), 0)


def test_text_heatmaps_colour_tokens_by_relevance(tmp_path):
    from PIL import Image

    relevance = np.array([0.5, -1.0, 0.0, 1.0])
    text = npxai.heatmaps.text_heatmap(["a", "b", "c", "d"], relevance)
    assert "\x1b[48;2;0;0;255m\x1b[38;2;0;0;0mb\x1b[0m" in text  # -max: bwr's blue end
    assert "\x1b[48;2;255;0;0m\x1b[38;2;0;0;0md\x1b[0m" in text  # +max: its red end
    assert "\x1b[48;2;255;255;255m\x1b[38;2;0;0;0mc\x1b[0m" in text  # 0: white
    path = tmp_path / "tokens.png"
    npxai.heatmaps.save_text_heatmap(["a", "b", "c", "d"], relevance, path)
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    assert {(0, 0, 255), (255, 0, 0)} <= colours
    with pytest.raises(ValueError, match="one string per token and one relevance each: 2 tokens"):
        npxai.heatmaps.text_heatmap(["a", "b"], relevance)
