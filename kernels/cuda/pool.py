"""Max, average and adaptive average pooling on the device. Same functions as
``npxai.kernels.cpu.pool`` (and ``npxai.reference.pool``).

The forward kernels run one thread per output element (one window); the VJPs gather, one thread
per input element, summing over the windows that contain it in row-major window order (no atomics,
so the results do not depend on scheduling). Inputs are indexed ``x[n, c, h, w]`` with bounds
checks instead of padding, so any strides work. Output sizes, the first-maximum tie rule (NaN
winning, as in torch) and the divisors are the reference's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from numba import cuda

from npxai.reference.pool import pool_output_size

from . import as_device, grid_1d

if TYPE_CHECKING:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as DeviceArray


@cuda.jit(device=True)
def _min(a, b):
    # not the builtin: numba 0.66+ cannot compile two-argument min/max for CUDA (numba#10753)
    return b if b < a else a


@cuda.jit(device=True)
def _max(a, b):
    return b if b > a else a


@cuda.jit(device=True)
def _window(start, step, count, size):
    """Kernel positions ``[k0, k1)`` whose input index ``start + k * step`` lies in ``[0, size)``."""
    k0 = 0 if start >= 0 else _min((-start + step - 1) // step, count)
    k1 = _max(k0, _min(count, (size - 1 - start) // step + 1))
    return k0, k1


@cuda.jit(device=True)
def _unravel(t, c, oh, ow):
    """Flat index ``t`` of an ``(N, C, OH, OW)`` array as ``(n, c, p, q)``."""
    q = t % ow
    t //= ow
    p = t % oh
    t //= oh
    return t // c, t % c, p, q


@cuda.jit(device=True)
def _first_maximum(x, n, c, h0, dh, kh, w0, dw, kw):
    """``(value, h * W + w)`` of the first maximum, in row-major window order, of the window at
    ``(h0, w0)`` (``(-inf, 0)`` for a window wholly on padding, which never wins), or of its last
    NaN if it holds one: the element torch picks."""
    h, w = x.shape[2], x.shape[3]
    i0, i1 = _window(h0, dh, kh, h)
    j0, j1 = _window(w0, dw, kw, w)
    best = -math.inf
    index = 0
    if i0 < i1 and j0 < j1:  # torch starts from the window's first element (a -inf window's pick)
        index = (h0 + i0 * dh) * w + w0 + j0 * dw
    for i in range(i0, i1):
        hi = h0 + i * dh
        for j in range(j0, j1):
            wi = w0 + j * dw
            value = x[n, c, hi, wi]
            if value > best or math.isnan(value):  # strict: the first maximum wins; NaN wins
                best = value
                index = hi * w + wi
    return best, index


@cuda.jit
def _max_pool(x, y, argmax, kh, kw, sh, sw, ph, pw, dh, dw):
    t = cuda.grid(1)
    if t < y.size:
        n, c, p, q = _unravel(t, y.shape[1], y.shape[2], y.shape[3])
        best, index = _first_maximum(x, n, c, p * sh - ph, dh, kh, q * sw - pw, dw, kw)
        y[n, c, p, q] = best
        argmax[n, c, p, q] = index


@cuda.jit
def _max_pool_vjp(g, argmax, gx, kh, kw, sh, sw, ph, pw, dh, dw, empty_windows, zero):
    # one thread per input element: the windows (p, q) with a kernel position (i, j) on it, in
    # increasing p and q (i and j decreasing), whose recorded arg-max is this element
    t = cuda.grid(1)
    if t < gx.size:
        n, c, hi, wi = _unravel(t, gx.shape[1], gx.shape[2], gx.shape[3])
        oh, ow = g.shape[2], g.shape[3]
        here = hi * gx.shape[3] + wi
        total = zero
        if empty_windows and here == 0:
            # windows wholly on padding record arg-max 0 without covering (0, 0): scan them all
            for p in range(oh):
                for q in range(ow):
                    if argmax[n, c, p, q] == 0:
                        total += g[n, c, p, q]
        else:
            for i in range(kh - 1, -1, -1):
                top = hi + ph - i * dh
                if top >= 0 and top % sh == 0 and top // sh < oh:
                    p = top // sh
                    for j in range(kw - 1, -1, -1):
                        left = wi + pw - j * dw
                        if left >= 0 and left % sw == 0 and left // sw < ow:
                            q = left // sw
                            if argmax[n, c, p, q] == here:
                                total += g[n, c, p, q]
        gx[n, c, hi, wi] = total


def _some_window_on_padding_only(size, out, kernel, stride, pad, dilation) -> bool:
    """Whether a window of :func:`max_pool2d` along one axis has no kernel position in the input
    (possible with dilation: its arg-max is then 0, which the reference's VJP credits)."""
    return any(
        not any(0 <= o * stride - pad + i * dilation < size for i in range(kernel))
        for o in range(out)
    )


@cuda.jit(device=True)
def _divisor(p, q, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    if divisor_override > 0:
        return divisor_override
    h0, w0 = p * sh - ph, q * sw - pw
    h1, w1 = _min(h0 + kh, h + ph), _min(w0 + kw, w + pw)
    if count_include_pad:
        return (h1 - h0) * (w1 - w0)
    return (_min(h1, h) - _max(h0, 0)) * (_min(w1, w) - _max(w0, 0))


@cuda.jit
def _avg_pool(x, y, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override, zero):
    t = cuda.grid(1)
    if t < y.size:
        h, w = x.shape[2], x.shape[3]
        n, c, p, q = _unravel(t, y.shape[1], y.shape[2], y.shape[3])
        total = zero
        for hi in range(_max(p * sh - ph, 0), _min(p * sh - ph + kh, h)):
            for wi in range(_max(q * sw - pw, 0), _min(q * sw - pw + kw, w)):
                total += x[n, c, hi, wi]
        d = _divisor(p, q, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override)
        y[n, c, p, q] = total / d


@cuda.jit(device=True)
def _windows_over(i, k, s, pad, out):
    """Windows ``[p0, p1)`` of length ``k`` at ``p * s - pad`` that contain index ``i``."""
    first = i + pad - k + 1  # p * s >= first
    p0 = 0 if first <= 0 else (first + s - 1) // s
    p1 = _min(out, (i + pad) // s + 1)
    return p0, _max(p0, p1)


@cuda.jit
def _avg_pool_vjp(g, gx, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override, zero):
    t = cuda.grid(1)
    if t < gx.size:
        h, w = gx.shape[2], gx.shape[3]
        n, c, hi, wi = _unravel(t, gx.shape[1], h, w)
        p0, p1 = _windows_over(hi, kh, sh, ph, g.shape[2])
        q0, q1 = _windows_over(wi, kw, sw, pw, g.shape[3])
        total = zero
        for p in range(p0, p1):
            for q in range(q0, q1):
                d = _divisor(
                    p, q, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override
                )
                total += g[n, c, p, q] / d
        gx[n, c, hi, wi] = total


@cuda.jit(device=True)
def _bin(p, size, out):
    """torch's adaptive bin ``p``: ``[floor(p * in / out), ceil((p + 1) * in / out))``."""
    return (p * size) // out, ((p + 1) * size + out - 1) // out


@cuda.jit
def _adaptive_avg_pool(x, y, zero):
    t = cuda.grid(1)
    if t < y.size:
        h, w = x.shape[2], x.shape[3]
        oh, ow = y.shape[2], y.shape[3]
        n, c, p, q = _unravel(t, y.shape[1], oh, ow)
        h0, h1 = _bin(p, h, oh)
        w0, w1 = _bin(q, w, ow)
        total = zero
        for hi in range(h0, h1):
            for wi in range(w0, w1):
                total += x[n, c, hi, wi]
        y[n, c, p, q] = total / ((h1 - h0) * (w1 - w0))


@cuda.jit
def _adaptive_avg_pool_vjp(g, gx, zero):
    # the bins containing i are p = floor(i * out / in) .. ceil((i + 1) * out / in) - 1
    t = cuda.grid(1)
    if t < gx.size:
        h, w = gx.shape[2], gx.shape[3]
        oh, ow = g.shape[2], g.shape[3]
        n, c, hi, wi = _unravel(t, gx.shape[1], h, w)
        total = zero
        for p in range((hi * oh) // h, ((hi + 1) * oh + h - 1) // h):
            h0, h1 = _bin(p, h, oh)
            for q in range((wi * ow) // w, ((wi + 1) * ow + w - 1) // w):
                w0, w1 = _bin(q, w, ow)
                if h0 <= hi < h1 and w0 <= wi < w1:
                    total += g[n, c, p, q] / ((h1 - h0) * (w1 - w0))
        gx[n, c, hi, wi] = total


def _launch(kernel, out, *args) -> None:
    kernel[grid_1d(out.size)](*args)


def _zero(a: DeviceArray):
    """A zero of ``a``'s dtype, passed to the summing kernels as their starting value (``a[0] * 0``
    would be NaN where ``a[0]`` is NaN or Inf, and spread it to every sum)."""
    return a.dtype.type(0)


def max_pool2d(
    x: DeviceArray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
    return_indices: bool = False,
) -> DeviceArray | tuple[DeviceArray, DeviceArray]:
    """``y[n, c, p, q] = max_{i, j} x[n, c, p*s_h - pad_h + i*d_h, q*s_w - pad_w + j*d_w]``.

    Padding never wins. Returns ``y``, or with ``return_indices`` ``(y, argmax)``, ``argmax``
    (int64) being the flat index ``h * W + w`` into the unpadded input of the winning element;
    ties go to the first position in row-major window order, as in torch, and a window holding a
    NaN gives NaN at its last NaN. One thread per window (the arg-max written either way).
    """
    x = as_device(x)
    n, c, h, w = x.shape
    out = tuple(
        pool_output_size(*a, ceil_mode)
        for a in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    y = cuda.device_array((n, c, *out), x.dtype)
    argmax = cuda.device_array((n, c, *out), "int64")
    _launch(_max_pool, y, x, y, argmax, *kernel, *stride, *padding, *dilation)
    return (y, argmax) if return_indices else y


def max_pool2d_vjp(
    grad_y: DeviceArray,
    x: DeviceArray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
) -> DeviceArray:
    """``dL/dx[n, c, h, w] = sum of dL/dy[n, c, p, q] over the windows (p, q) whose (first)
    maximum is at (h, w)``: the arg-max of :func:`max_pool2d` on ``x``, then one thread per input
    element gathering from the windows that cover it."""
    grad_y, x = as_device(grad_y), as_device(x)
    _, argmax = max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, True)
    gx = cuda.device_array(x.shape, grad_y.dtype)
    empty = any(
        _some_window_on_padding_only(*a)
        for a in zip(x.shape[2:], argmax.shape[2:], kernel, stride, padding, dilation, strict=True)
    )
    _launch(
        _max_pool_vjp, gx, grad_y, argmax, gx, *kernel, *stride, *padding, *dilation, empty,
        _zero(grad_y),
    )  # fmt: skip
    return gx


def avg_pool2d(
    x: DeviceArray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> DeviceArray:
    """``y[n, c, p, q] = sum_{i, j} xpad[n, c, p*s_h - pad_h + i, q*s_w - pad_w + j] / d[p, q]``.

    ``xpad`` is zero-padded; ``d`` is ``divisor_override`` if given, else the window clipped to
    ``[-pad, in + pad)`` (``count_include_pad``) or to the input: see
    ``npxai.reference.pool.avg_pool2d_divisor``. One thread per window.
    """
    x = as_device(x)
    n, c, h, w = x.shape
    out = tuple(
        pool_output_size(s, k, st, p, 1, ceil_mode)
        for s, k, st, p in zip((h, w), kernel, stride, padding, strict=True)
    )
    y = cuda.device_array((n, c, *out), x.dtype)
    _launch(
        _avg_pool, y, x, y, *kernel, *stride, *padding, bool(count_include_pad),
        divisor_override or 0, _zero(x),
    )  # fmt: skip
    return y


def avg_pool2d_vjp(
    grad_y: DeviceArray,
    input_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    count_include_pad: bool,
    divisor_override: int | None,
) -> DeviceArray:
    """``dL/dx[n, c, h, w] = sum over windows (p, q) containing (h, w) of dL/dy[n, c, p, q] /
    d[p, q]`` (the divisor of :func:`avg_pool2d`). One thread per input element."""
    grad_y = as_device(grad_y)
    n, c = grad_y.shape[:2]
    gx = cuda.device_array((n, c, *input_size), grad_y.dtype)
    _launch(
        _avg_pool_vjp, gx, grad_y, gx, *kernel, *stride, *padding, bool(count_include_pad),
        divisor_override or 0, _zero(grad_y),
    )  # fmt: skip
    return gx


def adaptive_avg_pool2d(x: DeviceArray, output_size: tuple[int, int]) -> DeviceArray:
    """``y[n, c, p, q] = mean of x[n, c, rows of bin p, cols of bin q]``, bin ``p`` of ``out``
    over ``in`` being ``[floor(p*in/out), ceil((p+1)*in/out))``. One thread per output element."""
    x = as_device(x)
    n, c = x.shape[:2]
    y = cuda.device_array((n, c, *output_size), x.dtype)
    _launch(_adaptive_avg_pool, y, x, y, _zero(x))
    return y


def adaptive_avg_pool2d_vjp(grad_y: DeviceArray, input_size: tuple[int, int]) -> DeviceArray:
    """``dL/dx[n, c, h, w] = sum over bins (p, q) containing (h, w) of dL/dy[n, c, p, q] / |bin|``.
    One thread per input element."""
    grad_y = as_device(grad_y)
    n, c = grad_y.shape[:2]
    gx = cuda.device_array((n, c, *input_size), grad_y.dtype)
    _launch(_adaptive_avg_pool_vjp, gx, grad_y, gx, _zero(grad_y))
    return gx
