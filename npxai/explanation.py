"""The result of an analyzer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import heatmaps


@dataclass(repr=False)
class Explanation:
    """What an analyzer says about a batch.

    - ``attribution``: one map per sample, the input's shape (Grad-CAM's: the feature layer's
      resolution, ``(N, 1, h, w)``, with the input-resolution map in ``extras["upsampled"]``;
      CRP's: one map per sample and concept, ``(N, k, *input.shape[1:])``);
    - ``output``: the model's outputs for the batch, ``(N, K)``;
    - ``target``: the explained output index per sample, ``(N,)``, or the per-class weights
      ``(N, K)`` that a weighted target gave (see ``npxai.gradient.target_indices``);
    - ``analyzer``: the analyzer's name;
    - ``heatmap_preset``: the name of the heatmap preset that suits the method
      (``"sensitivity"``, ``"attribution"`` or ``"cam"``; see :mod:`npxai.heatmaps`);
    - ``extras``: anything else the analyzer reports (per-layer data, upsampled maps, settings);
    - ``input``: the explained batch (for overlays). On the numpy and numba backends it is the
      caller's array itself when that is a float32 or float64 NumPy array, not a copy (a batch
      can be large): changing that array afterwards changes ``input`` too; pass ``x.copy()`` to
      keep a snapshot. A list, or a host array on the cuda backend, gives a new array.

    ``explanation.heatmap()`` draws it (:func:`npxai.heatmap`), ``explanation.save_heatmap(path)``
    writes one sample's heatmap as PNG (:func:`npxai.save_heatmap`).
    """

    attribution: np.ndarray
    output: np.ndarray
    target: np.ndarray
    analyzer: str
    heatmap_preset: str
    extras: dict[str, Any] = field(default_factory=dict)
    input: np.ndarray | None = None

    def heatmap(self, preset: str | None = None, **options: Any) -> np.ndarray:
        """RGB uint8 images ``(N, H, W, 3)``: ``npxai.heatmap(self, preset, **options)`` (preset
        ``self.heatmap_preset`` unless given)."""
        return heatmaps.heatmap(self, preset, **options)

    def save_heatmap(self, path: str | os.PathLike, sample: int = 0, **options: Any) -> None:
        """Sample ``sample``'s heatmap as a PNG file: ``npxai.save_heatmap(self, path, sample,
        **options)``."""
        heatmaps.save_heatmap(self, path, sample, **options)

    def __repr__(self) -> str:
        a = self.attribution
        lines = [
            f"Explanation({self.analyzer}, heatmap_preset={self.heatmap_preset!r}",
            f"  attribution: {a.dtype} {a.shape}, range [{a.min():.4g}, {a.max():.4g}]",
            f"  output: {self.output.shape}, target: "
            + (
                f"weights {self.target.shape}"
                if self.target.ndim == 2
                else f"{self.target.tolist()}"
            ),
        ]
        for key, value in self.extras.items():
            if isinstance(value, np.ndarray):
                shown = f"{value.dtype} {value.shape}"
            elif isinstance(value, dict | list):
                shown = f"{type(value).__name__} of {len(value)} entries"
            else:
                shown = repr(value)
            lines.append(f"  extras[{key!r}]: {shown}")
        return "\n".join(lines) + "\n)"
