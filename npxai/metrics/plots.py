"""The perturbation curves of several methods as one PNG per metric (matplotlib, no screen)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np


def save_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str,
    xlabel: str,
    ylabel: str,
) -> None:
    """One plot, one line per method: ``curves[method] = (x values, mean curve)`` (the mean over
    the samples), written as a PNG to ``path``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for method, (xs, ys) in curves.items():
        axes.plot(xs, ys, marker="." if len(xs) <= 30 else None, label=method)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path, format="png")
