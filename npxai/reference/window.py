"""Padding and sliding windows shared by convolution and pooling.

Padding is always given as ``(top, bottom, left, right)``; kernel, stride and dilation as
``(height, width)`` pairs.
"""

import numpy as np


def pad2d(x: np.ndarray, padding: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` by ``padding = (top, bottom, left, right)`` with ``value``."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, constant_values=value)


def crop2d(x: np.ndarray, padding: tuple[int, int, int, int]) -> np.ndarray:
    """Undo :func:`pad2d`: drop ``padding = (top, bottom, left, right)`` from the last two axes."""
    top, bottom, left, right = padding
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


def window(
    xp: np.ndarray,
    offset: tuple[int, int],
    out_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """The view ``xp[..., p*s_h + i*d_h, q*s_w + j*d_w]`` for all outputs ``(p, q)``.

    ``offset = (i, j)`` is the kernel position; the result has shape ``(..., out_h, out_w)``.
    """
    (i, j), (oh, ow), (sh, sw), (dh, dw) = offset, out_size, stride, dilation
    return xp[
        ..., i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw
    ]
