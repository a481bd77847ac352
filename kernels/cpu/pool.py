"""Max, average and adaptive average pooling, compiled. Same functions as ``npxai.reference.pool``.

Every kernel runs one (sample, channel) plane per parallel task (the max pool's forward: one
output row) and reads the input with bounds checks instead of padding it. Output sizes, tie rules
(NaN winning, as in torch) and divisors are the reference's.

Max pooling splits each output row into the columns whose windows lie wholly inside the input's
columns (the interior) and the rest. A boundary window is scanned alone, with bounds checks; the
interior is swept tap by tap, in the window's row-major order, each tap one pass along the row,
``best[q] = x[r, q*s_w + c]`` where that beats ``best[q]`` (unsigned indices, so that Numba adds
no negative-index wraparound: the passes vectorise). The forward pass needs no arg-max. The input
gradient tracks the winning tap ``i*k_w + j`` beside each maximum, as a float updated by
arithmetic (``t += better * (tap - t)``; written as a second select, the pass did not
vectorise), then adds each output's gradient at its window's winner, a row of outputs at a time.
Kernel 2 and stride 2 (VGG's pools) keep kernels of their own, one pass without bounds checks,
faster there (the vjp: one store per window into a zeroed gradient). Measured with ``python
benchmarks/profile_pool.py`` (medians, 2 threads) on ResNet's stem pool, 3x3 stride 2 over 64 x
112 x 112, against the same script run on commit 66ea6d5's kernels: the forward 32.5 to 4.9-7.2
ms at batch 8 (torch 23-27), 4.0 to 0.7-1.1 ms at batch 1; the input gradient 35 to 20 ms and
4.3 to 1.6-2.7 ms (torch's backward reads its saved indices: 3-4 and 0.2 ms).
"""

import numpy as np
from numba import njit, prange

from npxai.reference.pool import adaptive_bins, pool_output_size

from .threads import TAP, sized


@njit(cache=True)
def _window(start, step, count, size):
    """Kernel positions ``[k0, k1)`` whose input index ``start + k * step`` lies in ``[0, size)``."""
    k0 = 0 if start >= 0 else min((-start + step - 1) // step, count)
    k1 = max(k0, min(count, (size - 1 - start) // step + 1))
    return k0, k1


@njit(cache=True)
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


@njit(cache=True)
def _interior(kw, sw, pw, dw, w, ow):
    """Output columns ``[qa, qb)`` whose windows' columns ``q*s_w - p_w + j*d_w`` all lie in the
    input's ``[0, w)``."""
    qa = min(ow, (pw + sw - 1) // sw)
    qb = max(qa, min(ow, (w - 1 - (kw - 1) * dw + pw) // sw + 1))
    return qa, qb


@njit(cache=True, inline="always")
def _row_values(x, plane, p, kh, kw, sh, sw, ph, pw, dh, dw, qa, qb, best):
    """``best[q]``: window (p, q)'s maximum (NaN if it holds one), over output row ``p``."""
    h, w = x.shape[1], x.shape[2]
    h0 = p * sh - ph
    i0, i1 = _window(h0, dh, kh, h)
    for k in range(qa + best.shape[0] - qb):  # the boundary windows, each scanned alone
        q = k if k < qa else qb + k - qa
        w0 = q * sw - pw
        j0, j1 = _window(w0, dw, kw, w)
        best[q] = _first_maximum(x, plane, h0, i0, i1, dh, w0, j0, j1, dw)[0]
    for i in range(i0, i1):
        row = x[plane, h0 + i * dh]
        for j in range(kw):
            off = j * dw - pw  # interior columns q*sw + off are >= 0
            if i == i0 and j == 0:  # the window's first element starts it (torch's rule)
                for q in range(qa, qb):
                    best[q] = row[np.uint64(q * sw + off)]
                continue
            for q in range(qa, qb):
                v, b = row[np.uint64(q * sw + off)], best[q]
                best[q] = v if (v > b) | np.isnan(v) else b
    if i0 >= i1:  # every window of the row on padding
        for q in range(qa, qb):
            best[q] = -np.inf


@njit(cache=True, inline="always")
def _row_maximum(x, plane, p, kh, kw, sh, sw, ph, pw, dh, dw, qa, qb, best, where, tap, offset):
    """``best[q]`` as :func:`_row_values`, and ``where[q]``: the flat index ``h*W + w`` of its
    first maximum (its last NaN; 0 for a window wholly on padding). ``tap`` (a float array of
    the row's length) and ``offset`` (``kh*kw`` ints) are scratch."""
    h, w = x.shape[1], x.shape[2]
    h0 = p * sh - ph
    i0, i1 = _window(h0, dh, kh, h)
    for k in range(qa + best.shape[0] - qb):
        q = k if k < qa else qb + k - qa
        w0 = q * sw - pw
        j0, j1 = _window(w0, dw, kw, w)
        best[q], bi, bj = _first_maximum(x, plane, h0, i0, i1, dh, w0, j0, j1, dw)
        where[q] = bi * w + bj
    for i in range(i0, i1):
        row = x[plane, h0 + i * dh]
        for j in range(kw):
            off, t = j * dw - pw, best.dtype.type(i * kw + j)
            offset[i * kw + j] = (h0 + i * dh) * w + j * dw - pw
            if i == i0 and j == 0:
                for q in range(qa, qb):
                    best[q], tap[q] = row[np.uint64(q * sw + off)], t
                continue
            for q in range(qa, qb):
                v, b = row[np.uint64(q * sw + off)], best[q]
                better = (v > b) | np.isnan(v)
                best[q] = v if better else b
                tap[q] += better * (t - tap[q])  # as a select, this loop did not vectorise
    for q in range(qa, qb):
        if i0 < i1:
            where[q] = offset[np.int64(tap[q])] + q * sw
        else:
            best[q], where[q] = -np.inf, 0


@njit(parallel=True, cache=True)
def _max_pool(x, y, kh, kw, sh, sw, ph, pw, dh, dw):
    oh, ow = y.shape[1], y.shape[2]
    qa, qb = _interior(kw, sw, pw, dw, x.shape[2], ow)
    for task in prange(x.shape[0] * oh):
        plane, p = task // oh, task % oh
        _row_values(x, plane, p, kh, kw, sh, sw, ph, pw, dh, dw, qa, qb, y[plane, p])


@njit(parallel=True, cache=True)
def _max_pool_indices(x, y, argmax, kh, kw, sh, sw, ph, pw, dh, dw):
    oh, ow = y.shape[1], y.shape[2]
    qa, qb = _interior(kw, sw, pw, dw, x.shape[2], ow)
    for plane in prange(x.shape[0]):
        tap, offset = np.empty(ow, y.dtype), np.zeros(kh * kw, np.int64)
        for p in range(oh):
            _row_maximum(x, plane, p, kh, kw, sh, sw, ph, pw, dh, dw, qa, qb, y[plane, p],
                         argmax[plane, p], tap, offset)  # fmt: skip


@njit(parallel=True, cache=True)
def _max_pool_vjp(g, x, gx, kh, kw, sh, sw, ph, pw, dh, dw):
    # gx: (planes, H*W), zeroed; each row of outputs found as in _max_pool_indices, its
    # gradients added at the winners
    oh, ow = g.shape[1], g.shape[2]
    qa, qb = _interior(kw, sw, pw, dw, x.shape[2], ow)
    for plane in prange(x.shape[0]):
        best, where = np.empty(ow, x.dtype), np.empty(ow, np.int64)
        tap, offset = np.empty(ow, x.dtype), np.zeros(kh * kw, np.int64)
        for p in range(oh):
            _row_maximum(x, plane, p, kh, kw, sh, sw, ph, pw, dh, dw, qa, qb, best, where, tap,
                         offset)  # fmt: skip
            for q in range(ow):
                gx[plane, where[q]] += g[plane, p, q]


@njit(parallel=True, cache=True)
def _max_pool_2x2(x, y, argmax, indices):
    # kernel 2, stride 2, no padding or dilation (VGG's pools): four reads per output, no bounds;
    # the arg-max written only with indices (argmax is otherwise an empty stand-in)
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
                if indices:
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
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    n, c, h, w = x.shape
    out = tuple(
        pool_output_size(*a, ceil_mode)
        for a in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    y = np.empty((n * c, *out), x.dtype)
    argmax = np.empty((n * c, *out), np.int64) if return_indices else None
    taps = kernel[0] * kernel[1]
    if _is_2x2(kernel, stride, padding, dilation, out, (h, w)):
        unused = np.empty((0, 0, 0), np.int64)  # no arg-max asked for: none written
        sized(_max_pool_2x2, y.size * 4, TAP)(
            _planes(x), y, unused if argmax is None else argmax, return_indices
        )
    elif return_indices:
        sized(_max_pool_indices, y.size * taps, TAP)(
            _planes(x), y, argmax, *kernel, *stride, *padding, *dilation
        )
    else:
        sized(_max_pool, y.size * taps, TAP)(_planes(x), y, *kernel, *stride, *padding, *dilation)
    y = y.reshape(n, c, *out)
    return (y, argmax.reshape(n, c, *out)) if return_indices else y


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
    if _is_2x2(kernel, stride, padding, dilation, grad_y.shape[2:], (h, w)):
        gx = np.zeros((n * c, h, w), grad_y.dtype)
        sized(_max_pool_2x2_vjp, grad_y.size * 4, TAP)(_planes(grad_y), _planes(x), gx)
        return gx.reshape(n, c, h, w)
    gx = np.zeros((n * c, h * w), grad_y.dtype)
    sized(_max_pool_vjp, grad_y.size * kernel[0] * kernel[1], TAP)(
        _planes(grad_y), _planes(x), gx, *kernel, *stride, *padding, *dilation
    )
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
    sized(_avg_pool, y.size * kernel[0] * kernel[1], TAP)(
        _planes(x), y, *kernel, *stride, *padding, count_include_pad, divisor_override or 0
    )
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
    sized(_avg_pool_vjp, grad_y.size * kernel[0] * kernel[1], TAP)(
        _planes(grad_y), gx, *kernel, *stride, *padding, count_include_pad, divisor_override or 0
    )
    return gx.reshape(n, c, *input_size)


def _bins(size: int, out: int) -> np.ndarray:
    return np.array(adaptive_bins(size, out), dtype=np.int64)


def adaptive_avg_pool2d(x: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    n, c, h, w = x.shape
    y = np.empty((n * c, *output_size), x.dtype)
    sized(_adaptive_avg_pool, x.size, TAP)(
        _planes(x), y, _bins(h, output_size[0]), _bins(w, output_size[1])
    )
    return y.reshape(n, c, *output_size)


def adaptive_avg_pool2d_vjp(grad_y: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    n, c, oh, ow = grad_y.shape
    gx = np.zeros((n * c, *input_size), grad_y.dtype)
    sized(_adaptive_avg_pool_vjp, gx.size, TAP)(
        _planes(grad_y), gx, _bins(input_size[0], oh), _bins(input_size[1], ow)
    )
    return gx.reshape(n, c, *input_size)
