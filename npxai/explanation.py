"""The result of an analyzer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(repr=False)
class Explanation:
    """What an analyzer says about a batch.

    - ``attribution``: one map per sample, the input's shape (Grad-CAM's: the feature layer's
      resolution, ``(N, 1, h, w)``, with the input-resolution map in ``extras["upsampled"]``;
      CRP's: one map per sample and concept, ``(N, k, *input.shape[1:])``);
    - ``output``: the model's outputs for the batch, ``(N, K)``;
    - ``target``: the explained output index per sample, ``(N,)``;
    - ``analyzer``: the analyzer's name;
    - ``heatmap``: the name of the heatmap preset that suits the method (``"sensitivity"``,
      ``"attribution"`` or ``"cam"``);
    - ``extras``: anything else the analyzer reports (per-layer data, upsampled maps, settings);
    - ``input``: the explained batch (for overlays).
    """

    attribution: np.ndarray
    output: np.ndarray
    target: np.ndarray
    analyzer: str
    heatmap: str
    extras: dict[str, Any] = field(default_factory=dict)
    input: np.ndarray | None = None

    def __repr__(self) -> str:
        a = self.attribution
        lines = [
            f"Explanation({self.analyzer}, heatmap={self.heatmap!r}",
            f"  attribution: {a.dtype} {a.shape}, range [{a.min():.4g}, {a.max():.4g}]",
            f"  output: {self.output.shape}, target: {self.target.tolist()}",
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
