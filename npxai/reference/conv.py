"""2-D convolution (cross-correlation, as in torch): forward and input vector-Jacobian product.

Both are written as a loop over the ``kh * kw`` kernel positions; at each position the strided
window of the padded input meets the weight slice ``W[:, :, i, j]`` in one matrix product per group.
"""

import numpy as np

from .window import crop2d, pad2d, window


def conv2d_output_size(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """``out = floor((in + pad_before + pad_after - d * (k - 1) - 1) / s) + 1`` per axis."""
    pads = (padding[0] + padding[1], padding[2] + padding[3])
    return tuple(
        (n + p - d * (k - 1) - 1) // s + 1
        for n, p, k, s, d in zip(size, pads, kernel, stride, dilation, strict=True)
    )


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Grouped 2-D cross-correlation.

    With ``G = groups``, ``C' = C / G`` input and ``O' = O / G`` output channels per group, output
    channel ``o`` in group ``g = o // O'`` is::

        y[n, o, p, q] = b[o] + sum_{c < C', i, j} W[o, c, i, j] * xpad[n, g*C' + c, p*s_h + i*d_h,
                                                                          q*s_w + j*d_w]

    ``x`` is ``(N, C, H, W)``, ``W`` is ``(O, C', kh, kw)``; ``xpad`` is ``x`` zero-padded by
    ``padding = (top, bottom, left, right)``.
    """
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh, ow = conv2d_output_size((h, w), (kh, kw), stride, padding, dilation)
    xp = pad2d(x, padding)
    xg = xp.reshape(n, groups, cg, xp.shape[-2], xp.shape[-1])
    wg = weight.reshape(groups, o // groups, cg, kh, kw)
    y = np.zeros((n, groups, o // groups, oh * ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = window(xg, (i, j), (oh, ow), stride, dilation).reshape(n, groups, cg, oh * ow)
            y += wg[:, :, :, i, j] @ patch
    y = y.reshape(n, o, oh, ow)
    if bias is not None:
        y += bias.reshape(1, o, 1, 1)
    return y


def conv2d_vjp(
    grad_y: np.ndarray,
    weight: np.ndarray,
    input_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Input gradient of :func:`conv2d` (a transposed convolution)::

        dL/dxpad[n, g*C' + c, p*s_h + i*d_h, q*s_w + j*d_w] += sum_{o' < O'} W[g*O' + o', c, i, j]
                                                                * dL/dy[n, g*O' + o', p, q]

    then the padding is cropped away. Input positions that no window reaches get zero.
    """
    n, o, oh, ow = grad_y.shape
    _, cg, kh, kw = weight.shape
    top, bottom, left, right = padding
    hp, wp = input_size[0] + top + bottom, input_size[1] + left + right
    gy = grad_y.reshape(n, groups, o // groups, oh * ow)
    wg_t = weight.reshape(groups, o // groups, cg, kh, kw).swapaxes(1, 2)
    gxp = np.zeros((n, groups, cg, hp, wp), dtype=grad_y.dtype)
    for i in range(kh):
        for j in range(kw):
            contribution = (wg_t[:, :, :, i, j] @ gy).reshape(n, groups, cg, oh, ow)
            window(gxp, (i, j), (oh, ow), stride, dilation)[...] += contribution
    return crop2d(gxp.reshape(n, groups * cg, hp, wp), padding)
