"""Max, average and adaptive average pooling: forward and input vector-Jacobian product.

Output sizes, ``ceil_mode`` and ``count_include_pad`` follow torch exactly.
"""

import numpy as np

from .window import pad2d, window


def pool_output_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool
) -> int:
    """torch's pooling size: ``out = floor_or_ceil((in + 2p - d(k-1) - 1) / s) + 1``.

    With ``ceil_mode`` the last window must start inside the input or its left padding,
    otherwise it is dropped: if ``(out - 1) * s >= in + p`` then ``out -= 1``.
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_padding(
    size: tuple[int, int],
    out_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Padding ``(top, bottom, left, right)`` that makes every window of every output fit.

    The bottom and right get extra padding when ``ceil_mode`` lets the last window overhang.
    """
    need = [
        (o - 1) * s + d * (k - 1) + 1 - n - p
        for n, o, k, s, p, d in zip(size, out_size, kernel, stride, padding, dilation, strict=True)
    ]
    return padding[0], max(padding[0], need[0]), padding[1], max(padding[1], need[1])


def max_pool2d(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``y[n, c, p, q] = max_{i, j} x[n, c, p*s_h - pad_h + i*d_h, q*s_w - pad_w + j*d_w]``.

    Padding never wins (it is ``-inf``). Returns ``y``, or with ``return_indices`` (torch's
    name) ``(y, argmax)``, where ``argmax`` is the flat index ``h * W + w`` into the unpadded
    input of the winning element; ties go to the first position in row-major window order, as
    in torch. As torch, a window starts from its first element in the input, which a later one
    replaces where ``val > max or isnan(val)``: a window of ``-inf`` has its first element as
    arg-max, and one holding a NaN gives NaN, its arg-max the last NaN. A window wholly on
    padding (possible with dilation) gives ``-inf`` with arg-max 0.
    """
    n, c, h, w = x.shape
    out = tuple(
        pool_output_size(*a, ceil_mode)
        for a in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    pads = _pool_padding((h, w), out, kernel, stride, padding, dilation)
    xp = pad2d(x, pads, -np.inf)
    rows = np.arange(out[0]) * stride[0] - padding[0]
    cols = np.arange(out[1]) * stride[1] - padding[1]
    best = np.full((n, c) + out, -np.inf, dtype=x.dtype)
    argmax = np.zeros((n, c) + out, dtype=np.int64)
    started = np.zeros(out, dtype=bool)  # whether the window has met an element of the input
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            candidate = window(xp, (i, j), out, stride, dilation)
            r, q = rows[:, None] + i * dilation[0], cols[None, :] + j * dilation[1]
            inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
            better = inside & (~started | (candidate > best) | np.isnan(candidate))
            best = np.where(better, candidate, best)
            argmax = np.where(better, r * w + q, argmax)
            started |= inside
    return (best, argmax) if return_indices else best


def max_pool2d_vjp(
    grad_y: np.ndarray,
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
) -> np.ndarray:
    """``dL/dx[n, c, h, w] = sum of dL/dy[n, c, p, q] over the outputs whose window's (first)
    maximum is at (h, w)`` (the arg-max of :func:`max_pool2d` on the recorded input: a window's
    last NaN, if it holds one)."""
    n, c, h, w = x.shape
    _, argmax = max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, True)
    grad_x = np.zeros((n * c, h * w), dtype=grad_y.dtype)
    rows = np.arange(n * c)[:, None]
    np.add.at(grad_x, (rows, argmax.reshape(n * c, -1)), grad_y.reshape(n * c, -1))
    return grad_x.reshape(n, c, h, w)


def avg_pool2d_divisor(
    size: tuple[int, int],
    out_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    """The ``(out_h, out_w)`` array of divisors, as torch computes them.

    A window spans ``[p*s - pad, p*s - pad + k)`` clipped to ``[-pad, in + pad)``; with
    ``count_include_pad`` its divisor is that clipped length (padding counted, the ``ceil_mode``
    overhang not), otherwise the count of real input elements in it.
    """
    if divisor_override is not None:
        return np.full(out_size, float(divisor_override))
    lengths = []
    for n, o, k, s, p in zip(size, out_size, kernel, stride, padding, strict=True):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        lengths.append(end - start)
    return np.outer(lengths[0], lengths[1]).astype(float)


def avg_pool2d(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    """``y[n, c, p, q] = sum_{i, j} xpad[n, c, p*s_h + i, q*s_w + j] / divisor[p, q]``.

    ``xpad`` is zero-padded; see :func:`avg_pool2d_divisor` for the divisor.
    """
    h, w = x.shape[-2:]
    no_dilation = (1, 1)
    out = tuple(
        pool_output_size(n, k, s, p, 1, ceil_mode)
        for n, k, s, p in zip((h, w), kernel, stride, padding, strict=True)
    )
    xp = pad2d(x, _pool_padding((h, w), out, kernel, stride, padding, no_dilation))
    total = np.zeros(x.shape[:2] + out, dtype=x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            total += window(xp, (i, j), out, stride, no_dilation)
    divisor = avg_pool2d_divisor(
        (h, w), out, kernel, stride, padding, count_include_pad, divisor_override
    )
    return total / divisor.astype(x.dtype)


def avg_pool2d_vjp(
    grad_y: np.ndarray,
    input_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    """``dL/dx[n, c, h, w] = sum over windows (p, q) containing (h, w) of dL/dy[n, c, p, q] / divisor[p, q]``."""
    out = grad_y.shape[-2:]
    no_dilation = (1, 1)
    divisor = avg_pool2d_divisor(
        input_size, out, kernel, stride, padding, count_include_pad, divisor_override
    )
    share = grad_y / divisor.astype(grad_y.dtype)
    pads = _pool_padding(input_size, out, kernel, stride, padding, no_dilation)
    grad_xp = pad2d(np.zeros(grad_y.shape[:2] + tuple(input_size), dtype=grad_y.dtype), pads)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            window(grad_xp, (i, j), out, stride, no_dilation)[...] += share
    top, _, left, _ = pads
    return grad_xp[..., top : top + input_size[0], left : left + input_size[1]]


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive bins: bin ``i`` covers ``[floor(i*in/out), ceil((i+1)*in/out))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(x: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """``y[n, c, p, q] = mean of x[n, c, rows of bin p, cols of bin q]`` (see :func:`adaptive_bins`)."""
    h, w = x.shape[-2:]
    y = np.empty(x.shape[:2] + tuple(output_size), dtype=x.dtype)
    for p, (h0, h1) in enumerate(adaptive_bins(h, output_size[0])):
        for q, (w0, w1) in enumerate(adaptive_bins(w, output_size[1])):
            y[..., p, q] = x[..., h0:h1, w0:w1].mean(axis=(-2, -1))
    return y


def adaptive_avg_pool2d_vjp(grad_y: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """``dL/dx[n, c, h, w] = sum over bins (p, q) containing (h, w) of dL/dy[n, c, p, q] / |bin|``."""
    h, w = input_size
    oh, ow = grad_y.shape[-2:]
    grad_x = np.zeros(grad_y.shape[:2] + (h, w), dtype=grad_y.dtype)
    for p, (h0, h1) in enumerate(adaptive_bins(h, oh)):
        for q, (w0, w1) in enumerate(adaptive_bins(w, ow)):
            area = (h1 - h0) * (w1 - w0)
            grad_x[..., h0:h1, w0:w1] += grad_y[..., p, q, None, None] / area
    return grad_x
