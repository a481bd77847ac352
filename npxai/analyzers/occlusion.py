"""Occlusion (Zeiler and Fergus 2014), model-agnostic: it only calls the model forward.

A window of shape ``k`` (over every axis of a sample, the batch axis excepted) slides with
stride ``s``; at each position ``w`` the window's entries are replaced by the baseline ``b``, and
the drop of the explained output is spread over the window::

    x_w = x (1 - M_w) + b M_w,    A = sum_w (f(x)_t - f(x_w)_t) M_w / sum_w M_w

``M_w`` the window's mask. As Captum's ``Occlusion``: along an axis of size ``D`` the window
takes ``ceil((D - k) / s) + 1`` positions at offsets ``0, s, 2s, ...``, the last one cut at the
edge, so every entry is covered; the stride may not exceed the window (where ``D > k``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import backend_or_default
from ..checks import positive_int, shown
from ..explanation import Explanation
from ..gradient import target_indices
from ..module import check_input
from .base import Analyzer, Target
from .perturbation import broadcast_baselines, check_baselines, explained_rows, forward_function


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    """An int for every axis of a sample, or a tuple of one positive int per axis."""
    values = (value,) * ndim if isinstance(value, int | np.integer) else tuple(value)
    if len(values) != ndim or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(
            f"Occlusion: {name} must be a positive int or one per axis of a sample ({ndim} "
            f"axes), got {shown(value)}"
        )
    return tuple(int(v) for v in values)


class Occlusion(Analyzer):
    """Sliding-window occlusion (see :mod:`npxai.analyzers.occlusion`), Captum's ``Occlusion``:
    ``sliding_window_shapes`` is the window over a sample's axes (``(3, 15, 15)`` for an RGB
    image), ``strides`` one int or one per axis (default 1), ``baselines`` a number or an array
    of the sample's shape (or the batch's, or a batch of 1). ``model`` is an npxai model, a
    torch module or any callable ``f(x) -> scores (N, K)``; ``batch_size`` bounds the rows of
    one forward call (occluded copies of the whole batch: at least one position per call).
    ``extras["positions"]``: the number of window positions."""

    heatmap_preset = "attribution"

    def __init__(
        self,
        model: Any,
        sliding_window_shapes: Sequence[int],
        strides: int | Sequence[int] = 1,
        baselines: float | np.ndarray = 0.0,
        batch_size: int = 64,
        backend: str | None = None,
    ):
        self.backend = None if backend is None else backend_or_default(backend)
        self.forward = forward_function(model, self.backend)
        self.model = model
        self.window = _per_axis(sliding_window_shapes, len(sliding_window_shapes), "window")
        self.strides = _per_axis(strides, len(self.window), "strides")
        self.baselines = check_baselines(baselines, "Occlusion")
        self.batch_size = positive_int(batch_size, "Occlusion: batch_size")

    def _check(self, x: np.ndarray) -> np.ndarray:
        """The baseline broadcast to ``x``; the window and strides checked against its shape."""
        sample = x.shape[1:]
        if len(sample) != len(self.window):
            raise ValueError(
                f"Occlusion: the window {self.window} has {len(self.window)} axes, a sample of "
                f"the input {x.shape} has {len(sample)}"
            )
        for axis, (d, k, s) in enumerate(zip(sample, self.window, self.strides, strict=True)):
            if k > d:
                raise ValueError(
                    f"Occlusion: the window {self.window} is larger than a sample {sample} "
                    f"along axis {axis + 1}"
                )
            if s > k and d > k:
                raise ValueError(
                    f"Occlusion: stride {s} exceeds the window's {k} along axis {axis + 1}: "
                    "entries between windows would never be occluded"
                )
        return broadcast_baselines(self.baselines, x, "Occlusion")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        x = check_input(x)
        baseline = self._check(x)
        output = self.forward(x)
        indices = target_indices(output, target)
        samples = np.arange(len(x))
        reference = explained_rows(output, indices, samples)
        counts = [math.ceil((d - k) / s) + 1
                  for d, k, s in zip(x.shape[1:], self.window, self.strides, strict=True)]  # fmt: skip
        windows = [tuple(slice(i * s, i * s + k) for i, k, s in zip(index, self.window, self.strides, strict=True))
                   for index in itertools.product(*map(range, counts))]  # fmt: skip
        total = np.zeros_like(x)
        covered = np.zeros(x.shape[1:], x.dtype)
        per_call = max(1, self.batch_size // len(x))
        for start in range(0, len(windows), per_call):
            chunk = windows[start : start + per_call]
            occluded = np.repeat(x[None], len(chunk), axis=0)
            for copy, window in zip(occluded, chunk, strict=True):
                copy[(slice(None), *window)] = baseline[(slice(None), *window)]
            scores = self.forward(occluded.reshape(-1, *x.shape[1:]))
            drops = np.tile(reference, len(chunk)) - explained_rows(
                scores, indices, np.tile(samples, len(chunk))
            )
            for drop, window in zip(drops.reshape(len(chunk), len(x)), chunk, strict=True):
                total[(slice(None), *window)] += drop.reshape((-1,) + (1,) * (x.ndim - 1))
                covered[window] += 1
        attribution = total / covered
        return Explanation(attribution, output, indices, type(self).__name__, self.heatmap_preset,
                           {"positions": len(windows)}, x)  # fmt: skip

    def __repr__(self) -> str:
        return (f"Occlusion({type(self.model).__name__}, window={self.window}, "
                f"strides={self.strides})")  # fmt: skip
