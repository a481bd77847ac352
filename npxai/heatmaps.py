"""Heatmaps: attributions as RGB images.

A heatmap is made in three steps: reduce the channel axis (``sum``, ``norm``, ``maxabs``,
``sumabs``), scale each sample's map to [0, 1], and look the values up in a matplotlib colormap.
The scaling first clips the outliers, as Captum's ``visualize_image_attr`` does: with
``outlier_perc = p``, the threshold ``t`` is the smallest ``|m|`` such that the values with
``|m| <= t`` hold at least ``100 - p`` percent of ``sum |m|`` (so the values above ``t``, which
saturate, hold at most ``p`` percent of it; ``p = 0``: ``t = max |m|``, no clipping), and the map
is clipped to ``[-t, t]``. Then ``centered`` (for signed attributions) puts zero at 0.5 and
``t`` at 1 (``-t`` at 0), and ``extrema`` puts the clipped map's minimum at 0 and its maximum at
1. Presets, one per kind of method:

- ``"sensitivity"`` (Gradient, SmoothGrad, Guided Backprop, DeconvNet): norm, extrema,
  ``outlier_perc=2``, ``inferno``;
- ``"attribution"`` (InputTimesGradient, Integrated Gradients, LRP, CRP): sum, centered,
  ``outlier_perc=2``, ``bwr`` (blue negative, white zero, red positive);
- ``"cam"`` (Grad-CAM): the map upsampled to the input, extrema, ``outlier_perc=0`` (a smooth
  map whose maximum is a region, not an outlier), ``jet``, laid over the input image with
  transparency 0.5.

Attributions come in the input's layout, ``(N, C, H, W)``; the images come out channels-last,
``(N, H, W, 3)`` (as PIL and matplotlib take them). :func:`overlay` takes images in either
layout. Colormaps are sampled at 255 levels, so that 0.5 falls exactly on the middle colour (white
in ``bwr``) and 1 on the map's top colour. :func:`concept_grid` draws a CRP explanation's concept
maps of one sample as a captioned grid.
"""

from __future__ import annotations

import os
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .explanation import Explanation

REDUCTIONS = ("sum", "norm", "maxabs", "sumabs")
SCALINGS = ("centered", "extrema")
PRESETS: dict[str, dict[str, Any]] = {
    "sensitivity": {"reduce": "norm", "scale": "extrema", "outlier_perc": 2, "cmap": "inferno"},
    "attribution": {"reduce": "sum", "scale": "centered", "outlier_perc": 2, "cmap": "bwr"},
    "cam": {"reduce": "sum", "scale": "extrema", "outlier_perc": 0, "cmap": "jet"},
}
LAYOUTS = ("NCHW", "NHWC")
LEVELS = 255


def reduce_channels(attribution: np.ndarray, how: str) -> np.ndarray:
    """``(N, C, H, W) -> (N, H, W)``: ``sum_c a``, ``sqrt(sum_c a^2)``, ``max_c |a|`` or
    ``sum_c |a|``."""
    if attribution.ndim != 4:
        raise ValueError(
            f"heatmaps need attributions of shape (N, C, H, W), got {attribution.shape}"
            + (" (a CRP explanation: draw it with concept_grid, or one concept's maps,"
               " attribution[:, j])" if attribution.ndim == 5 else "")
        )  # fmt: skip
    if how == "sum":
        return attribution.sum(axis=1)
    if how == "norm":
        return np.sqrt((attribution**2).sum(axis=1))
    if how == "maxabs":
        return np.abs(attribution).max(axis=1)
    if how == "sumabs":
        return np.abs(attribution).sum(axis=1)
    raise ValueError(f"unknown channel reduction {how!r}; choose one of {', '.join(REDUCTIONS)}")


def clip_threshold(maps: np.ndarray, outlier_perc: float) -> np.ndarray:
    """Each sample's clipping threshold ``t``, shape ``(N, 1)``: with ``|m|`` sorted ascending,
    ``s_1 <= ... <= s_P``, and ``S_k = s_1 + ... + s_k``, ``t = s_k`` for the smallest ``k`` with
    ``S_k >= (1 - outlier_perc / 100) S_P`` (Captum's ``_cumulative_sum_threshold``); the values
    above ``t`` hold at most ``outlier_perc`` percent of ``sum |m|``."""
    if isinstance(outlier_perc, bool) or not isinstance(outlier_perc, Real):
        raise ValueError(f"outlier_perc must be a number in [0, 100), got {outlier_perc!r}")
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc must be a number in [0, 100), got {outlier_perc!r}")
    flat = np.abs(maps.reshape(len(maps), -1).astype(np.float64))
    if outlier_perc == 0:
        return flat.max(axis=1, keepdims=True)
    ordered = np.sort(flat, axis=1)
    sums = np.cumsum(ordered, axis=1)
    index = np.argmax(sums >= sums[:, -1:] * 0.01 * (100.0 - outlier_perc), axis=1)
    return np.take_along_axis(ordered, index[:, None], axis=1)


def scale_maps(maps: np.ndarray, how: str, outlier_perc: float = 0) -> np.ndarray:
    """Each sample's ``(H, W)`` map to [0, 1], after clipping it to ``[-t, t]`` with ``t`` the
    :func:`clip_threshold` for ``outlier_perc`` (0: ``t = max |m|``, nothing clipped):
    ``centered``: ``m / (2 t) + 1/2``; ``extrema``: ``(m - min m) / (max m - min m)`` of the
    clipped ``m``. An all-zero (or constant) map gives 0.5 (centered) or 0 (extrema)."""
    if how not in SCALINGS:
        raise ValueError(f"unknown scaling {how!r}; choose one of {', '.join(SCALINGS)}")
    top = clip_threshold(maps, outlier_perc)
    flat = np.clip(maps.reshape(len(maps), -1).astype(np.float64), -top, top)
    if how == "centered":
        scaled = 0.5 + flat / (2 * np.where(top > 0, top, 1))
    else:
        low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
        scaled = (flat - low) / np.where(high > low, high - low, 1)
    return scaled.reshape(maps.shape)


def colorize(values: np.ndarray, cmap: str) -> np.ndarray:
    """Values in [0, 1] to uint8 RGB through matplotlib colormap ``cmap`` (255 levels)."""
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap].resampled(LEVELS)
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {cmap!r}") from None
    return (colormap(values)[..., :3] * 255).round().astype(np.uint8)


def channels_last(image: np.ndarray, size: tuple[int, int], layout: str | None) -> np.ndarray:
    """Images ``(N, C, H, W)`` or ``(N, H, W, C)``, ``C`` = 1 or 3 and ``(H, W) = size``, as
    ``(N, H, W, C)``. ``layout`` (``"NCHW"`` or ``"NHWC"``) says which; ``None`` infers it from
    the shape and raises if both fit (e.g. ``(N, 3, 3, 3)`` for 3 x 3 heatmaps)."""
    if layout not in (None, *LAYOUTS):
        raise ValueError(f"layout must be None, 'NCHW' or 'NHWC', got {layout!r}")
    fits = {
        "NCHW": image.ndim == 4 and image.shape[1] in (1, 3) and image.shape[2:] == size,
        "NHWC": image.ndim == 4 and image.shape[3] in (1, 3) and image.shape[1:3] == size,
    }
    if layout is None and all(fits.values()):
        raise ValueError(
            f"overlay cannot tell the layout of images of shape {image.shape}: both "
            "(N, C, H, W) and (N, H, W, C) fit; pass layout='NCHW' or layout='NHWC'"
        )
    layout = layout or next((name for name, fit in fits.items() if fit), None)
    if layout is None or not fits[layout]:
        h, w = size
        wanted = {"NCHW": f"(N, 1 or 3, {h}, {w})", "NHWC": f"(N, {h}, {w}, 1 or 3)"}
        raise ValueError(
            "overlay needs images of shape "
            + (wanted[layout] if layout else " or ".join(wanted.values()))
            + f" for {h} x {w} heatmaps, got {image.shape}"
        )
    return image.transpose(0, 2, 3, 1) if layout == "NCHW" else image


def overlay(
    heat: np.ndarray, image: np.ndarray, alpha: float = 0.5, layout: str | None = None
) -> np.ndarray:
    """Blend RGB heatmaps ``(N, H, W, 3)`` over images: ``alpha * heat + (1 - alpha) * image``,
    uint8 ``(N, H, W, 3)``.

    ``image`` is channels-first ``(N, C, H, W)`` (a model's input) or channels-last
    ``(N, H, W, C)`` (a heatmap, a photo), ``C`` = 1 (grey, repeated) or 3, each image scaled by
    its own minimum and maximum to [0, 255]. The layout is the one that fits the heatmaps'
    ``(H, W)``; ``layout="NCHW"`` or ``"NHWC"`` says it where both fit.
    """
    heat = np.asarray(heat)
    if heat.ndim != 4 or heat.shape[3] != 3:
        raise ValueError(f"overlay needs RGB heatmaps of shape (N, H, W, 3), got {heat.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = channels_last(np.asarray(image), heat.shape[1:3], layout)
    if len(rgb) != len(heat):
        raise ValueError(f"overlay got {len(heat)} heatmaps but {len(rgb)} images")
    rgb = np.repeat(rgb, 3, axis=3) if rgb.shape[3] == 1 else rgb
    rgb = scale_maps(rgb, "extrema") * 255
    return (alpha * heat + (1 - alpha) * rgb).round().astype(np.uint8)


def heatmap(
    explanation: Explanation | np.ndarray,
    preset: str | None = None,
    *,
    reduce: str | None = None,
    scale: str | None = None,
    outlier_perc: float | None = None,
    cmap: str | None = None,
) -> np.ndarray:
    """RGB uint8 images, channels-last ``(N, H, W, 3)``, one per sample.

    ``explanation`` is an :class:`Explanation` (its ``heatmap_preset`` picks the preset) or an
    attribution array ``(N, C, H, W)`` (preset ``"attribution"`` unless given). ``reduce``,
    ``scale``, ``outlier_perc`` (the share of ``sum |m|``, in percent, that saturates: see
    :func:`clip_threshold`; the presets' default is 2, Grad-CAM's 0) and ``cmap`` override the
    preset's choices. The ``"cam"`` preset lays the heatmap over the explanation's input (see
    :func:`overlay`) when the explanation carries an input of the heatmap's height and width.
    """
    if hasattr(explanation, "heatmap_preset"):  # an Explanation (it imports this module)
        preset = preset or explanation.heatmap_preset
        attribution, image = explanation.attribution, explanation.input
        if preset == "cam" and "upsampled" in explanation.extras:
            attribution = explanation.extras["upsampled"]
    else:
        preset, attribution, image = preset or "attribution", np.asarray(explanation), None
    if preset not in PRESETS:
        raise ValueError(f"unknown heatmap preset {preset!r}; choose one of {', '.join(PRESETS)}")
    options = PRESETS[preset]
    maps = reduce_channels(attribution, reduce or options["reduce"])
    perc = options["outlier_perc"] if outlier_perc is None else outlier_perc
    rgb = colorize(scale_maps(maps, scale or options["scale"], perc), cmap or options["cmap"])
    if preset == "cam" and image is not None and image.shape[2:] == rgb.shape[1:3]:
        rgb = overlay(rgb, image, layout="NCHW")
    return rgb


def save_heatmap(
    explanation: Explanation | np.ndarray, path: str | os.PathLike, sample: int = 0, **options: Any
) -> None:
    """Write sample ``sample``'s heatmap (see :func:`heatmap` for ``options``) as a PNG file."""
    from PIL import Image

    images = heatmap(explanation, **options)
    if not -len(images) <= sample < len(images):
        raise ValueError(f"sample {sample} is out of range for a batch of {len(images)}")
    Image.fromarray(images[sample]).save(path, format="PNG")


def concept_grid(
    explanation: Explanation,
    sample: int = 0,
    *,
    columns: int | None = None,
    same_scale: bool = False,
    outlier_perc: float = PRESETS["attribution"]["outlier_perc"],
    cmap: str = "bwr",
    path: str | os.PathLike | None = None,
    panel_size: float = 2.0,
) -> Figure:
    """The concept maps of one sample of a CRP explanation as a grid of heatmaps, one panel per
    concept in the explanation's order, each captioned ``channel c`` and ``R_c`` with its share
    ``R_c / sum_c' |R_c'|`` (``extras["concept_relevance"]``, ``extras["concept_share"]``).

    Each map is the ``"attribution"`` preset: summed over the input's channels, clipped to
    ``[-t, t]``, scaled by ``m / (2 t) + 1/2`` and coloured with ``cmap``; ``t`` is each map's own
    :func:`clip_threshold` for ``outlier_perc`` (default 2, as the preset), or with
    ``same_scale=True`` the threshold of the sample's concept maps taken together (so that the
    panels compare).
    ``columns`` defaults to ``ceil(sqrt(k))``. Returns a :class:`matplotlib.figure.Figure` built
    without pyplot (no display backend needed); ``path`` also writes it as PNG.
    """
    from matplotlib.figure import Figure

    if "channels" not in explanation.extras or explanation.attribution.ndim != 5:
        raise ValueError(
            "concept_grid needs a CRP explanation (attribution of shape (N, k, C, H, W) and "
            f"extras['channels']), got attribution of shape {explanation.attribution.shape}"
        )
    n, k = explanation.attribution.shape[:2]
    if not -n <= sample < n:
        raise ValueError(f"sample {sample} is out of range for a batch of {n}")
    maps = reduce_channels(explanation.attribution[sample], "sum")  # (k, H, W)
    if same_scale:
        scaled = scale_maps(maps[None], "centered", outlier_perc)[0]
    else:
        scaled = scale_maps(maps, "centered", outlier_perc)
    images = colorize(scaled, cmap)
    extras = explanation.extras
    columns = columns or int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / columns))
    figure = Figure(figsize=(panel_size * columns, panel_size * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for j, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if j < k:
            ax.imshow(images[j])
            ax.set_title(
                f"channel {extras['channels'][sample, j]}\n"
                f"R = {extras['concept_relevance'][sample, j]:.3g} "
                f"({extras['concept_share'][sample, j]:.1%})",
                fontsize=9,
            )
    figure.suptitle(
        f"sample {sample}, target {explanation.target[sample]}, layer {extras.get('layer', '?')!r}",
        fontsize=10,
    )
    if path is not None:
        figure.savefig(path, format="png")
    return figure


def patch_map(relevance: np.ndarray, patch_size: int) -> np.ndarray:
    """A ViT's per-token relevance as a map of the image, ``(N, 1, H, W)``: ``relevance`` is
    ``(N, S)`` or ``(N, S, E)`` (summed over ``E``), the tokens of a ``g x g`` grid of patches
    in row-major order, ``S = g^2``, or with a class token first, ``S = g^2 + 1`` (dropped); each
    patch's relevance fills its ``patch_size x patch_size`` pixels (``H = W = g patch_size``).
    With ``record=True`` LRP keeps the tokens' relevance, e.g. at the positional embedding's sum
    (``extras["relevance"]["encoder.pos_sum"][0]`` for :func:`npxai.models.vit`)."""
    from .checks import positive_int

    patch_size = positive_int(patch_size, "patch_map: patch_size")
    relevance = np.asarray(relevance)
    if relevance.ndim not in (2, 3):
        raise ValueError(f"patch_map needs relevance of shape (N, S) or (N, S, E), got "
                         f"{relevance.shape}")  # fmt: skip
    tokens = relevance.sum(axis=2) if relevance.ndim == 3 else relevance
    count = tokens.shape[1]
    grid = int(round(np.sqrt(count)))
    if grid * grid != count:
        grid = int(round(np.sqrt(count - 1)))
        if grid * grid != count - 1:
            raise ValueError(
                f"patch_map: {count} tokens are neither a square grid of patches nor one with a "
                "class token first"
            )
        tokens = tokens[:, 1:]
    maps = tokens.reshape(len(tokens), 1, grid, grid)
    return np.kron(maps, np.ones((1, 1, patch_size, patch_size), maps.dtype))


def token_colours(relevance: np.ndarray, cmap: str = "bwr") -> np.ndarray:
    """uint8 RGB colours ``(S, 3)`` for the relevance ``(S,)`` of ``S`` tokens: scaled as the
    ``"attribution"`` preset scales a map (centered, no outliers clipped: the largest ``|R|`` at
    the colormap's ends, 0 white in ``bwr``)."""
    values = np.asarray(relevance, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"token relevance must have shape (S,), got {values.shape}")
    return colorize(scale_maps(values[None], "centered", 0)[0], cmap)


def _check_tokens(tokens: list[str], relevance: np.ndarray) -> None:
    if not all(isinstance(t, str) for t in tokens) or len(tokens) != len(relevance):
        raise ValueError(
            f"give one string per token and one relevance each: {len(tokens)} tokens, "
            f"relevance of shape {np.shape(relevance)}"
        )


def text_heatmap(tokens: list[str], relevance: np.ndarray, cmap: str = "bwr") -> str:
    """The tokens as terminal text, each on a background of its relevance's colour
    (:func:`token_colours`; 24-bit ANSI colours, black letters), separated by spaces."""
    _check_tokens(tokens, relevance)
    parts = []
    for token, (r, g, b) in zip(tokens, token_colours(relevance, cmap), strict=True):
        parts.append(f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{token}\x1b[0m")
    return " ".join(parts)


def save_text_heatmap(
    tokens: list[str],
    relevance: np.ndarray,
    path: str | os.PathLike,
    cmap: str = "bwr",
    width: int = 640,
) -> None:
    """The tokens as a PNG image, each on a box of its relevance's colour (:func:`token_colours`),
    in lines of at most ``width`` pixels."""
    from PIL import Image, ImageDraw, ImageFont

    _check_tokens(tokens, relevance)
    font = ImageFont.load_default()
    colours = token_colours(relevance, cmap)
    sizes = [font.getbbox(t)[2:] for t in tokens]
    line, pad = max([h for _, h in sizes] + [10]) + 8, 4
    boxes, x, y = [], pad, pad
    for w, _ in sizes:
        if x + w + 2 * pad > width and x > pad:
            x, y = pad, y + line
        boxes.append((x, y, x + w + 2 * pad, y + line - 4))
        x += w + 3 * pad
    image = Image.new("RGB", (width, y + line + pad), "white")
    draw = ImageDraw.Draw(image)
    for token, box, colour in zip(tokens, boxes, colours, strict=True):
        draw.rectangle(box, fill=tuple(int(c) for c in colour))
        draw.text((box[0] + pad, box[1] + 2), token, fill="black", font=font)
    image.save(path, format="PNG")
