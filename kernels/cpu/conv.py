"""2-D convolution, compiled. Same functions as ``npxai.reference.conv``.

Ungrouped convolutions are im2col + GEMM: a parallel kernel copies the receptive fields of a chunk
of samples into a column matrix ``cols[(c, i, j), (n, p, q)]`` (writing zeros where a field covers
padding, so the input is never padded), and one BLAS product per chunk computes
``W[o, (c, i, j)] @ cols``. A 1x1 convolution with stride 1 and no padding needs no copy at all.
3x3 convolutions with stride 1 (VGG's, ResNet's) and enough channels and outputs take Winograd's
F(2x2, 3x3) instead (:mod:`.winograd`: 4/9 of the multiply-adds in the GEMMs).
The input gradient of a stride-1 convolution is a convolution too (flipped kernel) and takes the
same paths where its output is large (or Winograd's); otherwise ``W^T @ dL/dy`` gives column
gradients, which a parallel col2im kernel adds back onto the input positions they came from.
Grouped convolutions use direct loops. Depthwise ones (one input channel per group, equal
strides) copy each plane into a zeroed padded plane split into stride x stride phases, where each
row of kernel taps is one contiguous pass over the plane; their input gradient is the same kernel
run on ``dL/dy`` spread by the stride, with the flipped kernel. On small planes both run
channels-last instead, the inner loop over the channels.

Compile time (a first call compiles each kernel it reaches, issue 23's cold start): ``_im2col``
and ``_col2im`` are plain loops, without slice assignments (in a ``prange`` body each becomes a
parfor of its own) or ``min``/``max`` (each an overload compiled apart), and their inner indices
are unsigned: Numba then adds no negative-index wraparound, and LLVM vectorises the copy as it did
the slices. NumPy adds the bias after a one-sample GEMM: nothing to compile, and as fast on large
outputs (0.6 ms both for 64 x 224 x 224; 20-30 microseconds slower for 512 x 14 x 14). Measured
with Numba's compile events (``numba.core.event``, thread CPU time) in LeNet's first LRP, empty
cache: ``_im2col`` 1.7-2.6 s before, 1.2-1.4 s after (the first kernel compiled, it carries
Numba's own start-up too), ``_col2im`` 2.1-2.5 s to 1.1-1.2 s, the bias kernel 0.4-0.5 s to none.
Run times did not grow (medians, 2 threads): VGG16's first layer at batch 1, im2col 0.42 to
0.35 ms and col2im 0.76 to 0.38 ms; ResNet18's 7x7 stride-2 layer at batch 8, 36 to 19 ms and 34
to 22 ms; a 64-channel 56 x 56 layer, 0.64 to 0.48 ms and 0.97 to 0.39 ms.
"""

import numpy as np
from numba import njit, prange

from npxai.reference.conv import conv2d_output_size

from . import blas, winograd
from .scratch import workspace
from .threads import COPY, STREAM, TAP, sized

#: Elements of ``cols`` per chunk: samples are batched into one GEMM up to this size.
CHUNK_ELEMENTS = 2**22

#: 3x3 stride-1 convolutions go to Winograd's F(2x2, 3x3) (:mod:`.winograd`) from this many input
#: and output channels and 2x2 output tiles per call (below, its transforms cost more than the
#: GEMM it saves: ``python benchmarks/profile_conv.py`` times both on VGG16's layers).
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_TILES = 64

#: Depthwise convolutions (one input channel per output channel) with at most this many output
#: positions per channel run channels-last (a transposed copy in and out), the inner loop over the
#: channels; larger planes take :func:`_depthwise`'s contiguous passes over each padded plane,
#: which on 7 x 7 and 14 x 14 planes pay more per plane than the copies cost (``python
#: benchmarks/profile_conv.py --depthwise --model mobilenet_v2`` times both on MobileNetV2's
#: layers, forward and input gradient).
DEPTHWISE_CHANNELS_LAST_MAX = 14 * 14

#: Parallel tasks of :func:`_depthwise` (at most; each takes a run of planes and one scratch
#: plane).
TASKS = 64

#: A stride-1 input gradient is a flipped-kernel convolution (im2col) from this many output
#: positions per sample, ``W^T @ dL/dy`` + col2im below (faster there: no kernel copy).
FLIPPED_MIN_SIZE = 8192


@njit(parallel=True, cache=True)
def _im2col(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    # x: (nb, C, H, W); cols: (C*kh*kw, nb*oh*ow); row r = (c*kh + i)*kw + j. Plain loops, no
    # slices or min/max (cheaper to compile: see the module docstring); the inner indices are
    # unsigned, so that Numba adds no negative-index wraparound and LLVM vectorises the copy.
    nb, c, h, w = x.shape
    rows = c * kh * kw
    length = oh * ow
    for task in prange(rows * nb):
        r, s = task // nb, task % nb
        ch, i, j = r // (kh * kw), (r // kw) % kh, r % kw
        # output columns q0 <= q < q1 read input column q*sw + left, inside [0, w)
        left = j * dw - pw
        q0 = 0 if left >= 0 else -(left // sw)
        q0 = q0 if q0 < ow else ow
        q1 = (w - 1 - left) // sw + 1
        q1 = q0 if q1 < q0 else (ow if q1 > ow else q1)
        for p in range(oh):
            hi = p * sh - ph + i * dh
            base = s * length + p * ow
            # a row on padding: all zeros (one loop fewer to compile than a branch of its own)
            inside = 0 <= hi < h
            a = q0 if inside else ow
            b = q1 if inside else ow
            for q in range(a):
                cols[r, np.uint64(base + q)] = 0
            for q in range(a, b):
                cols[r, np.uint64(base + q)] = x[s, ch, hi, np.uint64(q * sw + left)]
            for q in range(b, ow):
                cols[r, np.uint64(base + q)] = 0


@njit(parallel=True, cache=True)
def _col2im(gcols, gx, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    # adds gcols[(c, i, j), (s, p, q)] onto gx[s, c, p*sh - ph + i*dh, q*sw - pw + j*dw]; plain
    # loops and unsigned inner indices, as in _im2col
    nb, c, h, w = gx.shape
    length = oh * ow
    for task in prange(nb * c):
        s, ch = task // c, task % c
        for i in range(kh):
            for j in range(kw):
                r = (ch * kh + i) * kw + j
                # output columns q0 <= q < q1 reach input column q*sw + left, inside [0, w)
                left = j * dw - pw
                q0 = 0 if left >= 0 else -(left // sw)
                q0 = q0 if q0 < ow else ow
                q1 = (w - 1 - left) // sw + 1
                q1 = q0 if q1 < q0 else (ow if q1 > ow else q1)
                for p in range(oh):
                    hi = p * sh - ph + i * dh
                    if hi < 0 or hi >= h:
                        continue
                    base = s * length + p * ow
                    for q in range(q0, q1):
                        gx[s, ch, hi, np.uint64(q * sw + left)] += gcols[r, np.uint64(base + q)]


@njit(parallel=True, cache=True)
def _scatter_samples(z, bias, y, n0):
    # y[n0 + s, o, k] = z[o, s*L + k] + bias[o];  z: (O, nb*L), y: (N, O, L)
    o, total = z.shape
    length = y.shape[2]
    nb = total // length
    for task in prange(nb * o):
        s, ch = task // o, task % o
        for k in range(length):
            y[n0 + s, ch, k] = z[ch, s * length + k] + bias[ch]


@njit(parallel=True, cache=True)
def _gather_samples(g, z, n0):
    # g: (N, O, L) -> z[o, s*L + k] = g[n0 + s, o, k]
    o, total = z.shape
    length = g.shape[2]
    nb = total // length
    for task in prange(nb * o):
        s, ch = task // o, task % o
        for k in range(length):
            z[ch, s * length + k] = g[n0 + s, ch, k]


@njit(parallel=True, cache=True)
def _flip_transpose(w, out):
    # out[c, o, i, j] = w[o, c, kh - 1 - i, kw - 1 - j]: the input gradient's kernel
    o, c, kh, kw = w.shape
    for cc in prange(c):
        for oo in range(o):
            for i in range(kh):
                for j in range(kw):
                    out[cc, oo, i, j] = w[oo, cc, kh - 1 - i, kw - 1 - j]


@njit(parallel=True, cache=True)
def _grouped_conv(x, w, b, y, groups, sh, sw, ph, pw, dh, dw):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    oh, ow = y.shape[2], y.shape[3]
    for task in prange(n * o):
        s, ch = task // o, task % o
        c0 = (ch // og) * cg
        for p in range(oh):
            for q in range(ow):
                total = b[ch]
                for cc in range(cg):
                    for i in range(kh):
                        hi = p * sh - ph + i * dh
                        if hi < 0 or hi >= h:
                            continue
                        for j in range(kw):
                            wi = q * sw - pw + j * dw
                            if 0 <= wi < wd:
                                total += w[ch, cc, i, j] * x[s, c0 + cc, hi, wi]
                y[s, ch, p, q] = total


@njit(cache=True, inline="always")
def _tap(w, ch, i, j, flip):
    # channel ch's kernel weight (i, j), or (kh - 1 - i, kw - 1 - j) flipped
    kh, kw = w.shape[2], w.shape[3]
    return w[ch, 0, kh - 1 - i, kw - 1 - j] if flip else w[ch, 0, i, j]


@njit(cache=True, inline="always")
def _phase_offset(row, col, s, phase, wp):
    # where padded position (row, col) lies in _depthwise's phase-split plane (s * s phases)
    return np.uint64(((row % s) * s + col % s) * phase + (row // s) * wp + col // s)


@njit(parallel=True, cache=True)
def _depthwise(x, w, b, y, stride, spread, top, left, dh, dw, flip, tasks):
    # One input channel per group: output plane ch reads input plane ch // og. Per plane, the
    # input is copied into a zeroed padded plane (entry (r, c) at (top + spread r, left +
    # spread c): spread > 1 puts the zeros between a strided layer's output gradients), split
    # into stride x stride phases by row and column parity, so that every output (p, q) reads
    # tap (i, j) at one offset from k = p * wp + q: each row of taps is one contiguous pass
    # acc[k] += w0 a[k] + w1 b[k] + w2 c[k] over the plane (the columns q >= ow, read across a
    # row's end, are dropped). Indices are unsigned, so Numba adds no negative-index wraparound
    # (with it the passes did not vectorise: 4x slower).
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    og = o // c
    oh, ow = y.shape[2], y.shape[3]
    s = stride
    wp, rows = ow + dw * (kw - 1) // s, oh + dh * (kh - 1) // s  # a phase's width and height
    phase, length = rows * wp, oh * wp
    # the input rows and columns that land inside the phases
    r0 = min(max(0, -(top // spread)), h)
    r1 = max(r0, min(h, (s * rows - 1 - top) // spread + 1))
    c0 = min(max(0, -(left // spread)), wd)
    c1 = max(c0, min(wd, (s * wp - 1 - left) // spread + 1))
    planes = n * o
    us, uspread = np.uint64(s), np.uint64(spread)
    for task in prange(tasks):
        pad = np.zeros(s * s * phase + wp + kw * dw, x.dtype)  # zero once: the same entries
        acc = np.empty(length, x.dtype)  # are written for every plane
        for plane in range(task * planes // tasks, (task + 1) * planes // tasks):
            sample, ch = plane // o, plane % o
            for r in range(r0, r1):
                row, src = top + spread * r, x[sample, ch // og, r]
                for col_phase in range(s):
                    first = c0 + (col_phase - left - c0) % s
                    start = _phase_offset(row, left + spread * first, s, phase, wp)
                    for k in range(max(0, (c1 - first + s - 1) // s)):
                        pad[start + np.uint64(k) * uspread] = src[
                            np.uint64(first) + np.uint64(k) * us
                        ]
            acc[:] = b[ch]
            for i in range(kh):
                for j in range(0, kw, 3):  # up to three taps of row i per pass
                    w0, a = _tap(w, ch, i, j, flip), _phase_offset(i * dh, j * dw, s, phase, wp)
                    if j + 1 == kw:
                        for k in range(length):
                            acc[k] += w0 * pad[a + np.uint64(k)]
                        continue
                    w1 = _tap(w, ch, i, j + 1, flip)
                    b1 = _phase_offset(i * dh, (j + 1) * dw, s, phase, wp)
                    if j + 2 == kw:
                        for k in range(length):
                            u = np.uint64(k)
                            acc[k] += w0 * pad[a + u] + w1 * pad[b1 + u]
                        continue
                    w2 = _tap(w, ch, i, j + 2, flip)
                    c2 = _phase_offset(i * dh, (j + 2) * dw, s, phase, wp)
                    for k in range(length):
                        u = np.uint64(k)
                        acc[k] += w0 * pad[a + u] + w1 * pad[b1 + u] + w2 * pad[c2 + u]
            for p in range(oh):
                out = y[sample, ch, p]
                for q in range(ow):
                    out[q] = acc[np.uint64(p * wp + q)]


@njit(parallel=True, cache=True)
def _depthwise_conv_channels_last(x, w, b, y, sh, sw, ph, pw, dh, dw):
    # x: (N, H, W, C), w: (kh, kw, C), y: (N, oh, ow, C), one channel per group: the inner loop
    # runs over the channels, contiguous, so small planes vectorise too
    n, h, wd, c = x.shape
    kh, kw = w.shape[0], w.shape[1]
    oh, ow = y.shape[1], y.shape[2]
    for task in prange(n * oh):
        s, p = task // oh, task % oh
        for q in range(ow):
            for ch in range(c):
                y[s, p, q, ch] = b[ch]
            for i in range(kh):
                hi = p * sh - ph + i * dh
                if hi < 0 or hi >= h:
                    continue
                for j in range(kw):
                    wi = q * sw - pw + j * dw
                    if wi < 0 or wi >= wd:
                        continue
                    for ch in range(c):
                        y[s, p, q, ch] += w[i, j, ch] * x[s, hi, wi, ch]


@njit(parallel=True, cache=True)
def _grouped_conv_vjp(g, w, gx, groups, sh, sw, ph, pw, dh, dw):
    n, c, h, wd = gx.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    oh, ow = g.shape[2], g.shape[3]
    for task in prange(n * c):
        s, ch = task // c, task % c
        grp, cc = ch // cg, ch % cg
        for oo in range(grp * og, (grp + 1) * og):
            for i in range(kh):
                for j in range(kw):
                    weight = w[oo, cc, i, j]
                    for p in range(oh):
                        hi = p * sh - ph + i * dh
                        if hi < 0 or hi >= h:
                            continue
                        for q in range(ow):
                            wi = q * sw - pw + j * dw
                            if 0 <= wi < wd:
                                gx[s, ch, hi, wi] += weight * g[s, oo, p, q]


def _is_pointwise(kernel, stride, padding) -> bool:
    return kernel == (1, 1) and stride == (1, 1) and not any(padding)


def _winograd_applies(kernel, stride, dilation, channels: tuple[int, int], size: tuple[int, ...]):
    """Whether a one-group convolution with ``channels`` (in, out) and an output of ``size``
    (N, H, W) goes to :func:`.winograd.conv3x3`."""
    n, h, w = size
    return (
        kernel == (3, 3)
        and stride == dilation == (1, 1)
        and min(channels) >= WINOGRAD_MIN_CHANNELS
        and n * ((h + 1) // 2) * ((w + 1) // 2) >= WINOGRAD_MIN_TILES
    )


def _chunk(n: int, per_sample: int) -> int:
    return max(1, min(n, CHUNK_ELEMENTS // max(per_sample, 1)))


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh, ow = conv2d_output_size((h, w), (kh, kw), stride, padding, dilation)
    top, _, left, _ = padding
    b = np.zeros(o, x.dtype) if bias is None else np.ascontiguousarray(bias)
    if groups > 1 and cg == 1 and o == c and oh * ow <= DEPTHWISE_CHANNELS_LAST_MAX:
        x_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        w_last = np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0))
        y = np.empty((n, oh, ow, o), x.dtype)
        sized(_depthwise_conv_channels_last, y.size * kh * kw, STREAM)(
            x_last, w_last, b, y, *stride, top, left, *dilation
        )
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))
    if groups > 1 and cg == 1 and stride[0] == stride[1]:
        y = np.empty((n, o, oh, ow), x.dtype)
        w = np.ascontiguousarray(weight)
        sized(_depthwise, y.size * kh * kw, STREAM)(
            x, w, b, y, stride[0], 1, top, left, *dilation, False, min(n * o, TASKS)
        )
        return y
    if groups > 1:
        y = np.empty((n, o, oh, ow), x.dtype)
        sized(_grouped_conv, y.size * cg * kh * kw, TAP)(
            x, np.ascontiguousarray(weight), b, y, groups, *stride, top, left, *dilation
        )
        return y
    if _winograd_applies((kh, kw), stride, dilation, (c, o), (n, oh, ow)):
        return winograd.conv3x3(x, np.ascontiguousarray(weight), b, padding)
    length, rows = oh * ow, c * kh * kw
    w_mat = np.ascontiguousarray(weight.reshape(o, rows))
    y = np.empty((n, o, length), x.dtype)
    if _is_pointwise((kh, kw), stride, padding):  # y[n] = W @ x[n]: no copy, one GEMM a sample
        blas.matmul(w_mat, x.reshape(n, c, length), out=y)
        if bias is not None:
            y += b[:, None]
        return y.reshape(n, o, oh, ow)
    nb = _chunk(n, rows * length)
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        cols = workspace("im2col", (rows, count * length), x.dtype)
        sized(_im2col, cols.size, COPY)(
            x[n0 : n0 + count], cols, kh, kw, *stride, top, left, *dilation, oh, ow
        )
        if count == 1:
            blas.matmul(w_mat, cols, out=y[n0])
            if bias is not None:
                y[n0] += b[:, None]
        else:
            # the chunk's product into a reused buffer, as cols: a fresh one pays its page faults
            z = blas.matmul(w_mat, cols, out=workspace("conv product", (o, cols.shape[1]), x.dtype))
            sized(_scatter_samples, z.size, STREAM)(z, b, y, n0)
    return y.reshape(n, o, oh, ow)


def _depthwise_vjp(g, weight, size, stride, padding, dilation):
    """A depthwise convolution's input gradient: the convolution of ``dL/dy`` spread by the
    stride (zeros between its entries) with the flipped kernel, padded by ``d (k - 1) - p`` (a
    negative padding crops), stride 1: channels-last on small planes, as :func:`conv2d`."""
    n, c, _, _ = g.shape
    _, _, kh, kw = weight.shape
    top, _, left, _ = padding
    top, left = dilation[0] * (kh - 1) - top, dilation[1] * (kw - 1) - left
    zero = np.zeros(c, g.dtype)
    if stride == 1 and size[0] * size[1] <= DEPTHWISE_CHANNELS_LAST_MAX:
        g_last = np.ascontiguousarray(g.transpose(0, 2, 3, 1))
        w_last = np.ascontiguousarray(weight[:, 0, ::-1, ::-1].transpose(1, 2, 0))
        gx = np.empty((n, *size, c), g.dtype)
        sized(_depthwise_conv_channels_last, gx.size * kh * kw, STREAM)(
            g_last, w_last, zero, gx, 1, 1, top, left, *dilation
        )
        return np.ascontiguousarray(gx.transpose(0, 3, 1, 2))
    gx = np.empty((n, c, *size), g.dtype)
    sized(_depthwise, gx.size * kh * kw, STREAM)(
        g, weight, zero, gx, 1, stride, top, left, *dilation, True, min(n * c, TASKS)
    )
    return gx


def conv2d_vjp(
    grad_y: np.ndarray,
    weight: np.ndarray,
    input_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """A 3x3 stride-1 convolution's input gradient is a 3x3 convolution of ``dL/dy`` with the
    flipped, transposed kernel, padded by ``2 - p``: Winograd's where :func:`conv2d` would use it
    (the flip made inside its weight transform). A 1x1 stride-1 unpadded one's is ``W^T @ dL/dy``
    per sample, one GEMM each into the result. Depthwise ones: :func:`_depthwise_vjp`. Otherwise, with stride 1, padding at most
    ``d * (k - 1)`` per side, no fewer input than output channels and at least
    :data:`FLIPPED_MIN_SIZE` output positions, the convolution with the flipped kernel (a parallel
    copy) through :func:`conv2d`; else column gradients ``W^T @ dL/dy`` (``W^T`` a transposed view,
    no copy), then col2im (the faster choice for small outputs and for VGG's first layer, whose 3
    input channels make the column gradients small)."""
    grad_y = np.ascontiguousarray(grad_y)
    n, o, oh, ow = grad_y.shape
    _, cg, kh, kw = weight.shape
    h, w = input_size
    top, bottom, left, right = padding
    if (
        groups == 1
        and max(padding) <= 2
        and _winograd_applies((kh, kw), stride, dilation, (o, cg), (n, h, w))
    ):
        flipped_padding = (2 - top, 2 - bottom, 2 - left, 2 - right)
        return winograd.conv3x3(grad_y, np.ascontiguousarray(weight), None, flipped_padding, True)
    if groups == 1 and _is_pointwise((kh, kw), stride, padding):  # dL/dx[n] = W^T @ dL/dy[n]
        gx = np.empty((n, cg, h * w), grad_y.dtype)
        w_t = np.ascontiguousarray(weight).reshape(o, cg).T
        blas.matmul(w_t, grad_y.reshape(n, o, oh * ow), out=gx)
        return gx.reshape(n, cg, h, w)
    if groups == 1 and stride == (1, 1) and cg >= o and oh * ow >= FLIPPED_MIN_SIZE:
        span_h, span_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
        flipped_padding = (span_h - top, span_h - bottom, span_w - left, span_w - right)
        if min(flipped_padding) >= 0:
            flipped = np.empty((cg, o, kh, kw), weight.dtype)
            sized(_flip_transpose, flipped.size, STREAM)(weight, flipped)
            return conv2d(grad_y, flipped, None, (1, 1), flipped_padding, dilation, 1)
    if groups > 1 and cg == 1 and o == groups and stride[0] == stride[1]:
        return _depthwise_vjp(grad_y, np.ascontiguousarray(weight), (h, w), stride[0], padding,
                              dilation)  # fmt: skip
    gx = np.zeros((n, cg * groups, h, w), grad_y.dtype)
    if groups > 1:
        sized(_grouped_conv_vjp, grad_y.size * cg * kh * kw, TAP)(
            grad_y, np.ascontiguousarray(weight), gx, groups, *stride, top, left, *dilation
        )
        return gx
    length, rows = oh * ow, cg * kh * kw
    w_t = np.ascontiguousarray(weight).reshape(o, rows).T  # a view: BLAS reads it transposed
    g = grad_y.reshape(n, o, length)
    nb = _chunk(n, rows * length)
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        if count == 1:
            chunk_g = g[n0]
        else:
            chunk_g = workspace("gathered gradient", (o, count * length), grad_y.dtype)
            sized(_gather_samples, chunk_g.size, STREAM)(g, chunk_g, n0)
        gcols = blas.matmul(  # into a reused buffer, as the forward pass's product
            w_t, chunk_g, out=workspace("column gradients", (rows, chunk_g.shape[1]), grad_y.dtype)
        )
        sized(_col2im, gcols.size, COPY)(
            gcols, gx[n0 : n0 + count], kh, kw, *stride, top, left, *dilation, oh, ow
        )
    return gx
