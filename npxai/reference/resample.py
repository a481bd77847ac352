"""Upsampling as torch's ``nn.Upsample`` computes it, written as per-axis interpolation matrices:
``y = M_h x M_w^T`` over the last two axes, ``dL/dx = M_h^T (dL/dy) M_w``.

``M`` is ``(out, in)``: row ``j`` holds the weights output ``j`` takes from the inputs. Torch's
source coordinate of output ``j`` (``aten/src/ATen/native/UpSample.h``) uses ``scale = 1 /
scale_factor`` where a scale factor is given, else ``in / out``; ``align_corners=True`` maps the
corners onto each other, ``scale = (in - 1) / (out - 1)``.
"""

from __future__ import annotations

import math

import numpy as np


def upsample_output_size(n_in: int, size: int | None, scale_factor: float | None) -> int:
    """Torch's output length: ``size``, else ``floor(n_in * scale_factor)``."""
    return size if size is not None else math.floor(n_in * scale_factor)


def nearest_matrix(n_in: int, n_out: int, scale_factor: float | None) -> np.ndarray:
    """``M[j, i] = 1`` for ``i = min(floor(j * scale), n_in - 1)``, computed in float32 as torch's
    ``nearest_idx`` (exactly ``j`` where ``n_out == n_in``, ``j // 2`` where ``n_out == 2 n_in``)."""
    if scale_factor is not None and scale_factor > 0:
        scale = np.float32(1.0 / scale_factor)
    else:
        scale = np.float32(n_in) / np.float32(n_out)
    j = np.arange(n_out)
    if n_out == n_in:
        source = j
    elif n_out == 2 * n_in:
        source = j // 2
    else:
        source = np.minimum(np.floor(j.astype(np.float32) * scale).astype(np.int64), n_in - 1)
    matrix = np.zeros((n_out, n_in))
    matrix[j, source] = 1
    return matrix


def bilinear_matrix(
    n_in: int, n_out: int, scale_factor: float | None, align_corners: bool
) -> np.ndarray:
    """Linear interpolation along one axis, as torch's ``upsample_bilinear2d``: output ``j``
    reads source ``s = scale j`` (``align_corners``) or ``max(scale (j + 1/2) - 1/2, 0)``,
    ``M[j, floor(s)] = 1 - (s - floor(s))`` and ``M[j, floor(s) + 1] = s - floor(s)`` (that
    neighbour clamped to ``n_in - 1``); an axis whose length does not change is copied, whatever
    the scale factor (as torch)."""
    if n_out == n_in:
        return np.eye(n_in)
    if align_corners:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    elif scale_factor is not None and scale_factor > 0:
        scale = 1.0 / scale_factor
    else:
        scale = n_in / n_out
    j = np.arange(n_out)
    source = scale * j if align_corners else np.maximum(scale * (j + 0.5) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    weight = source - low
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (j, low), 1 - weight)
    np.add.at(matrix, (j, high), weight)
    return matrix


def upsample(x: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``y = M_h x M_w^T`` over the last two axes, in ``x``'s dtype."""
    return rows.astype(x.dtype) @ x @ columns.T.astype(x.dtype)


def upsample_vjp(grad_y: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``dL/dx = M_h^T (dL/dy) M_w``."""
    return rows.T.astype(grad_y.dtype) @ grad_y @ columns.astype(grad_y.dtype)
