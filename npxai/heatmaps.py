"""Heatmaps: attributions as RGB images.

A heatmap is made in three steps: reduce the channel axis (``sum``, ``norm``, ``maxabs``,
``sumabs``), scale each sample's map to [0, 1] (``centered``: zero at 0.5 and the largest
magnitude at 0 or 1, for signed attributions; ``extrema``: minimum at 0, maximum at 1), and look
the values up in a matplotlib colormap. Presets, one per kind of method:

- ``"sensitivity"`` (Gradient, SmoothGrad, Integrated Gradients, Guided Backprop, DeconvNet):
  norm, extrema, ``inferno``;
- ``"attribution"`` (InputTimesGradient, LRP): sum, centered, ``bwr``
  (blue negative, white zero, red positive);
- ``"cam"`` (Grad-CAM): the map upsampled to the input, extrema, ``jet``, laid over the input
  image with transparency 0.5.

Colormaps are sampled at 255 levels, so that 0.5 falls exactly on the middle colour (white in
``bwr``) and 1 on the map's top colour. :func:`concept_grid` draws a CRP explanation's concept
maps of one sample as a captioned grid.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .explanation import Explanation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REDUCTIONS = ("sum", "norm", "maxabs", "sumabs")
SCALINGS = ("centered", "extrema")
PRESETS: dict[str, dict[str, Any]] = {
    "sensitivity": {"reduce": "norm", "scale": "extrema", "cmap": "inferno", "overlay": False},
    "attribution": {"reduce": "sum", "scale": "centered", "cmap": "bwr", "overlay": False},
    "cam": {"reduce": "sum", "scale": "extrema", "cmap": "jet", "overlay": True},
}
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


def scale_maps(maps: np.ndarray, how: str) -> np.ndarray:
    """Each sample's ``(H, W)`` map to [0, 1]: ``centered``: ``m / (2 max |m|) + 1/2``;
    ``extrema``: ``(m - min m) / (max m - min m)``. An all-zero (or constant) map gives 0.5
    (centered) or 0 (extrema)."""
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    if how == "centered":
        top = np.abs(flat).max(axis=1, keepdims=True)
        scaled = 0.5 + flat / (2 * np.where(top > 0, top, 1))
    elif how == "extrema":
        low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
        scaled = (flat - low) / np.where(high > low, high - low, 1)
    else:
        raise ValueError(f"unknown scaling {how!r}; choose one of {', '.join(SCALINGS)}")
    return scaled.reshape(maps.shape)


def colorize(values: np.ndarray, cmap: str) -> np.ndarray:
    """Values in [0, 1] to uint8 RGB through matplotlib colormap ``cmap`` (255 levels)."""
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap].resampled(LEVELS)
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {cmap!r}") from None
    return (colormap(values)[..., :3] * 255).round().astype(np.uint8)


def overlay(heat: np.ndarray, image: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend RGB heatmaps ``(N, H, W, 3)`` uint8 over images ``(N, C, H, W)`` (C = 1 or 3; each
    scaled by its own min and max): ``alpha * heat + (1 - alpha) * image``."""
    if image.ndim != 4 or image.shape[1] not in (1, 3) or image.shape[2:] != heat.shape[1:3]:
        raise ValueError(
            f"overlay needs images of shape (N, 1 or 3, {heat.shape[1]}, {heat.shape[2]}), got {image.shape}"
        )
    rgb = np.repeat(image, 3, axis=1) if image.shape[1] == 1 else image
    rgb = scale_maps(rgb.transpose(0, 2, 3, 1), "extrema") * 255
    return (alpha * heat + (1 - alpha) * rgb).round().astype(np.uint8)


def heatmap(
    explanation: Explanation | np.ndarray,
    preset: str | None = None,
    *,
    reduce: str | None = None,
    scale: str | None = None,
    cmap: str | None = None,
) -> np.ndarray:
    """RGB uint8 images ``(N, H, W, 3)``, one per sample.

    ``explanation`` is an :class:`Explanation` (its ``heatmap`` field picks the preset) or an
    attribution array ``(N, C, H, W)`` (preset ``"attribution"`` unless given). ``reduce``,
    ``scale`` and ``cmap`` override the preset's choices.
    """
    if isinstance(explanation, Explanation):
        preset = preset or explanation.heatmap
        attribution, image = explanation.attribution, explanation.input
        if preset == "cam" and "upsampled" in explanation.extras:
            attribution = explanation.extras["upsampled"]
    else:
        preset, attribution, image = preset or "attribution", np.asarray(explanation), None
    if preset not in PRESETS:
        raise ValueError(f"unknown heatmap preset {preset!r}; choose one of {', '.join(PRESETS)}")
    options = PRESETS[preset]
    maps = reduce_channels(attribution, reduce or options["reduce"])
    rgb = colorize(scale_maps(maps, scale or options["scale"]), cmap or options["cmap"])
    if options["overlay"] and image is not None and image.shape[2:] == rgb.shape[1:3]:
        rgb = overlay(rgb, image)
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
    cmap: str = "bwr",
    path: str | os.PathLike | None = None,
    panel_size: float = 2.0,
) -> Figure:
    """The concept maps of one sample of a CRP explanation as a grid of heatmaps, one panel per
    concept in the explanation's order, each captioned ``channel c`` and ``R_c`` with its share
    ``R_c / sum_c' |R_c'|`` (``extras["concept_relevance"]``, ``extras["concept_share"]``).

    Each map is the ``"attribution"`` preset: summed over the input's channels, scaled by
    ``m / (2 max |m|) + 1/2`` and coloured with ``cmap``; ``max |m|`` is each map's own, or with
    ``same_scale=True`` the largest over the sample's concepts (so that the panels compare).
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
        top = np.abs(maps).max()
        scaled = 0.5 + maps / (2 * (top if top > 0 else 1))
    else:
        scaled = scale_maps(maps, "centered")
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
