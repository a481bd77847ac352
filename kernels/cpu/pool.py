"""Max, average and adaptive average pooling, compiled. Same functions as ``npxai.reference.pool``.

Every kernel runs one (sample, channel) plane per parallel task and reads the input with bounds
checks instead of padding it; max pooling with kernel 2 and stride 2 (VGG's) has kernels of its
own, without bounds checks. Output sizes, tie rules (NaN winning, as in torch) and divisors are
the reference's.

The 2x2 kernel's vjp writes each gradient at its window's maximum into a zeroed gradient (one
store per window), where it wrote all four elements and zeroed an odd last row by a slice. It
compiled in 2.0-2.4 s at the first call before, 0.66-0.79 s after (Numba's compile events,
thread CPU time, LeNet's first LRP with an empty cache), and runs faster (medians: 20 to 8 ms on
1 x 64 x 224 x 224, 38 to 11 ms on 8 x 64 x 112 x 112, 0.38 to 0.34 ms on 1 x 512 x 14 x 14).
"""

import numpy as np
from numba import njit, prange

from npxai.reference.pool import adaptive_bins, pool_output_size


@njit(cache=True)
def _window(start, step, count, size):
    """Kernel positions ``[k0, k1)`` whose input index ``start + k * step`` lies in ``[0, size)``."""
    k0 = 0 if start >= 0 else min((-start + step - 1) // step, count)
    k1 = max(k0, min(count, (size - 1 - start) // step + 1))
    return k0, k1


@njit(cache=True, inline="always")
def _first_maximum(x, plane, h0, i0, i1, dh, w0, j0, j1, dw):
    """``(value, row, column)`` of the first maximum, in row-major order, of the window whose
    kernel rows ``i0..i1`` and columns ``j0..j1`` fall inside the input (``(-inf, 0, 0)`` for a
    window wholly on padding), or of its last NaN if it holds one: the element torch picks (it
    starts from the window's first element, so a window of ``-inf`` picks that)."""
    best = -np.inf
    bi, bj = 0, 0
    if i0 < i1 and j0 < j1:
        bi, bj = h0 + i0 * dh, w0 + j0 * dw
    for i in range(i0, i1):
        hi = h0 + i * dh
        for j in range(j0, j1):
            wi = w0 + j * dw
            value = x[plane, hi, wi]
            # strict, and branch-free: the first maximum wins; NaN wins (torch's rule)
            better = (value > best) | np.isnan(value)
            best = value if better else best
            bi = hi if better else bi
            bj = wi if better else bj
    return best, bi, bj


@njit(parallel=True, cache=True)
def _max_pool(x, y, argmax, kh, kw, sh, sw, ph, pw, dh, dw):
    planes, h, w = x.shape
    for plane in prange(planes):
        for p in range(y.shape[1]):
            h0 = p * sh - ph
            i0, i1 = _window(h0, dh, kh, h)
            for q in range(y.shape[2]):
                w0 = q * sw - pw
                j0, j1 = _window(w0, dw, kw, w)
                best, bi, bj = _first_maximum(x, plane, h0, i0, i1, dh, w0, j0, j1, dw)
                y[plane, p, q] = best
                argmax[plane, p, q] = bi * w + bj


@njit(parallel=True, cache=True)
def _max_pool_vjp(g, x, gx, kh, kw, sh, sw, ph, pw, dh, dw):
    # one pass: find each window's first maximum, as _max_pool does, and add the gradient there
    planes, h, w = x.shape
    for plane in prange(planes):
        for p in range(g.shape[1]):
            h0 = p * sh - ph
            i0, i1 = _window(h0, dh, kh, h)
            for q in range(g.shape[2]):
                w0 = q * sw - pw
                j0, j1 = _window(w0, dw, kw, w)
                _, bi, bj = _first_maximum(x, plane, h0, i0, i1, dh, w0, j0, j1, dw)
                gx[plane, bi, bj] += g[plane, p, q]


@njit(parallel=True, cache=True)
def _max_pool_2x2(x, y, argmax):
    # kernel 2, stride 2, no padding or dilation (VGG's pools): four reads per output, no bounds
    w = x.shape[2]
    for plane in prange(x.shape[0]):
        for p in range(y.shape[1]):
            for q in range(y.shape[2]):
                i, j = 2 * p, 2 * q
                best, where = x[plane, i, j], i * w + j
                for value, at in (
                    (x[plane, i, j + 1], i * w + j + 1),
                    (x[plane, i + 1, j], (i + 1) * w + j),
                    (x[plane, i + 1, j + 1], (i + 1) * w + j + 1),
                ):
                    # strict, in row-major order: the first maximum wins; then the last NaN
                    if value > best or np.isnan(value):
                        best, where = value, at
                y[plane, p, q] = best
                argmax[plane, p, q] = where


@njit(parallel=True, cache=True)
def _max_pool_2x2_vjp(g, x, gx):
    # writes each gradient at its window's first maximum (a, b, c, d in row-major order), or its
    # last NaN; gx must be zeroed first (the other elements, an odd last row or column included)
    oh, ow = g.shape[1], g.shape[2]
    for plane in prange(x.shape[0]):
        for p in range(oh):
            i = 2 * p
            for q in range(ow):
                j = 2 * q
                a, b = x[plane, i, j], x[plane, i, j + 1]
                c, d = x[plane, i + 1, j], x[plane, i + 1, j + 1]
                di, dj, best = 0, 0, a
                if b > best or np.isnan(b):
                    dj, best = 1, b
                if c > best or np.isnan(c):
                    di, dj, best = 1, 0, c
                if d > best or np.isnan(d):
                    di, dj = 1, 1
                gx[plane, i + di, j + dj] = g[plane, p, q]


@njit(cache=True)
def _divisor(p, q, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    if divisor_override > 0:
        return divisor_override
    h0, w0 = p * sh - ph, q * sw - pw
    h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
    if count_include_pad:
        return (h1 - h0) * (w1 - w0)
    return (min(h1, h) - max(h0, 0)) * (min(w1, w) - max(w0, 0))


@njit(parallel=True, cache=True)
def _avg_pool(x, y, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    planes, h, w = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for plane in prange(planes):
        for p in range(oh):
            for q in range(ow):
                total = x.dtype.type(0)  # not x[...] * 0, which is NaN for NaN or Inf
                for hi in range(max(p * sh - ph, 0), min(p * sh - ph + kh, h)):
                    for wi in range(max(q * sw - pw, 0), min(q * sw - pw + kw, w)):
                        total += x[plane, hi, wi]
                d = _divisor(
                    p, q, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override
                )
                y[plane, p, q] = total / d


@njit(parallel=True, cache=True)
def _avg_pool_vjp(g, gx, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    planes, h, w = gx.shape
    oh, ow = g.shape[1], g.shape[2]
    for plane in prange(planes):
        for p in range(oh):
            for q in range(ow):
                d = _divisor(
                    p, q, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override
                )
                share = g[plane, p, q] / d
                for hi in range(max(p * sh - ph, 0), min(p * sh - ph + kh, h)):
                    for wi in range(max(q * sw - pw, 0), min(q * sw - pw + kw, w)):
                        gx[plane, hi, wi] += share


@njit(parallel=True, cache=True)
def _adaptive_avg_pool(x, y, rows, cols):
    planes = x.shape[0]
    for plane in prange(planes):
        for p in range(rows.shape[0]):
            for q in range(cols.shape[0]):
                total = x.dtype.type(0)  # not x[...] * 0, which is NaN for NaN or Inf
                for hi in range(rows[p, 0], rows[p, 1]):
                    for wi in range(cols[q, 0], cols[q, 1]):
                        total += x[plane, hi, wi]
                y[plane, p, q] = total / ((rows[p, 1] - rows[p, 0]) * (cols[q, 1] - cols[q, 0]))


@njit(parallel=True, cache=True)
def _adaptive_avg_pool_vjp(g, gx, rows, cols):
    planes = gx.shape[0]
    for plane in prange(planes):
        for p in range(rows.shape[0]):
            for q in range(cols.shape[0]):
                share = g[plane, p, q] / ((rows[p, 1] - rows[p, 0]) * (cols[q, 1] - cols[q, 0]))
                for hi in range(rows[p, 0], rows[p, 1]):
                    for wi in range(cols[q, 0], cols[q, 1]):
                        gx[plane, hi, wi] += share


def _planes(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(-1, x.shape[-2], x.shape[-1])


def _is_2x2(kernel, stride, padding, dilation, out, size) -> bool:
    """Kernel 2 and stride 2 without padding or dilation, and no window cut by ``ceil_mode``."""
    whole = all(2 * o <= n for o, n in zip(out, size, strict=True))
    return kernel == stride == (2, 2) and padding == (0, 0) and dilation == (1, 1) and whole


def max_pool2d(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
) -> tuple[np.ndarray, np.ndarray]:
    n, c, h, w = x.shape
    out = tuple(
        pool_output_size(*a, ceil_mode)
        for a in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    y = np.empty((n * c, *out), x.dtype)
    argmax = np.empty((n * c, *out), np.int64)
    if _is_2x2(kernel, stride, padding, dilation, out, (h, w)):
        _max_pool_2x2(_planes(x), y, argmax)
    else:
        _max_pool(_planes(x), y, argmax, *kernel, *stride, *padding, *dilation)
    return y.reshape(n, c, *out), argmax.reshape(n, c, *out)


def max_pool2d_vjp(
    grad_y: np.ndarray,
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
) -> np.ndarray:
    n, c, h, w = x.shape
    gx = np.zeros((n * c, h, w), grad_y.dtype)
    if _is_2x2(kernel, stride, padding, dilation, grad_y.shape[2:], (h, w)):
        _max_pool_2x2_vjp(_planes(grad_y), _planes(x), gx)
        return gx.reshape(n, c, h, w)
    _max_pool_vjp(_planes(grad_y), _planes(x), gx, *kernel, *stride, *padding, *dilation)
    return gx.reshape(n, c, h, w)


def avg_pool2d(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    n, c, h, w = x.shape
    out = tuple(
        pool_output_size(s, k, st, p, 1, ceil_mode)
        for s, k, st, p in zip((h, w), kernel, stride, padding, strict=True)
    )
    y = np.empty((n * c, *out), x.dtype)
    _avg_pool(_planes(x), y, *kernel, *stride, *padding, count_include_pad, divisor_override or 0)
    return y.reshape(n, c, *out)


def avg_pool2d_vjp(
    grad_y: np.ndarray,
    input_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    n, c = grad_y.shape[:2]
    gx = np.zeros((n * c, *input_size), grad_y.dtype)
    _avg_pool_vjp(
        _planes(grad_y), gx, *kernel, *stride, *padding, count_include_pad, divisor_override or 0
    )
    return gx.reshape(n, c, *input_size)


def _bins(size: int, out: int) -> np.ndarray:
    return np.array(adaptive_bins(size, out), dtype=np.int64)


def adaptive_avg_pool2d(x: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    n, c, h, w = x.shape
    y = np.empty((n * c, *output_size), x.dtype)
    _adaptive_avg_pool(_planes(x), y, _bins(h, output_size[0]), _bins(w, output_size[1]))
    return y.reshape(n, c, *output_size)


def adaptive_avg_pool2d_vjp(grad_y: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    n, c, oh, ow = grad_y.shape
    gx = np.zeros((n * c, *input_size), grad_y.dtype)
    _adaptive_avg_pool_vjp(_planes(grad_y), gx, _bins(input_size[0], oh), _bins(input_size[1], ow))
    return gx.reshape(n, c, *input_size)
