"""2-D convolution, compiled. Same functions as ``npxai.reference.conv``.

Ungrouped convolutions are im2col + GEMM: a parallel kernel copies the receptive fields of a chunk
of samples into a column matrix ``cols[(c, i, j), (n, p, q)]`` (reading zeros where a field covers
padding, so the input is never padded), and one BLAS product per chunk computes
``W[o, (c, i, j)] @ cols``. The bias rides along as an extra row of ones in ``cols``. The input
gradient is the same path backwards: ``W^T @ dL/dy`` gives column gradients, which a parallel
col2im kernel adds back onto the input positions they came from. A 1x1 convolution with stride 1
and no padding needs no copy at all. Grouped (and depthwise) convolutions use direct loops.
"""

import numpy as np
from numba import njit, prange

from npxai.reference.conv import conv2d_output_size

#: Elements of ``cols`` per chunk: samples are batched into one GEMM up to this size.
CHUNK_ELEMENTS = 2**22


@njit(parallel=True, cache=True)
def _im2col(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    # x: (nb, C, H, W); cols: (C*kh*kw [+1], nb*oh*ow); row r = (c*kh + i)*kw + j
    nb, c, h, w = x.shape
    rows = c * kh * kw
    length = oh * ow
    for task in prange(rows * nb):
        r, s = task // nb, task % nb
        ch, i, j = r // (kh * kw), (r // kw) % kh, r % kw
        for p in range(oh):
            hi = p * sh - ph + i * dh
            base = s * length + p * ow
            if hi < 0 or hi >= h:
                for q in range(ow):
                    cols[r, base + q] = 0
                continue
            for q in range(ow):
                wi = q * sw - pw + j * dw
                cols[r, base + q] = x[s, ch, hi, wi] if 0 <= wi < w else 0


@njit(parallel=True, cache=True)
def _col2im(gcols, gx, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    # adds gcols[(c, i, j), (s, p, q)] onto gx[s, c, p*sh - ph + i*dh, q*sw - pw + j*dw]
    nb, c, h, w = gx.shape
    length = oh * ow
    for task in prange(nb * c):
        s, ch = task // c, task % c
        for i in range(kh):
            for j in range(kw):
                r = (ch * kh + i) * kw + j
                for p in range(oh):
                    hi = p * sh - ph + i * dh
                    if hi < 0 or hi >= h:
                        continue
                    base = s * length + p * ow
                    for q in range(ow):
                        wi = q * sw - pw + j * dw
                        if 0 <= wi < w:
                            gx[s, ch, hi, wi] += gcols[r, base + q]


@njit(parallel=True, cache=True)
def _scatter_samples(z, y, n0):
    # z: (O, nb*L) -> y[n0 + s, o, :] ; y: (N, O, L)
    o, total = z.shape
    length = y.shape[2]
    nb = total // length
    for task in prange(nb * o):
        s, ch = task // o, task % o
        for k in range(length):
            y[n0 + s, ch, k] = z[ch, s * length + k]


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
    b = np.zeros(o, x.dtype) if bias is None else bias
    if groups > 1:
        y = np.empty((n, o, oh, ow), x.dtype)
        _grouped_conv(np.ascontiguousarray(x), np.ascontiguousarray(weight), b, y, groups,
                      *stride, top, left, *dilation)  # fmt: skip
        return y
    length, rows = oh * ow, c * kh * kw
    # W with the bias as one more column, against cols with one more row of ones
    w_aug = np.empty((o, rows + 1), x.dtype)
    w_aug[:, :rows] = weight.reshape(o, rows)
    w_aug[:, rows] = b
    y = np.empty((n, o, length), x.dtype)
    nb = _chunk(n, (rows + 1) * length)
    cols = np.empty((rows + 1, nb * length), x.dtype)
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        chunk_cols = cols[:, : count * length]
        if _is_pointwise((kh, kw), stride, padding) and count == 1:
            chunk_cols[:rows] = x[n0].reshape(c, h * w)
        else:
            _im2col(x[n0 : n0 + count], chunk_cols, kh, kw, *stride, top, left, *dilation, oh, ow)
        chunk_cols[rows] = 1
        if count == 1:
            np.matmul(w_aug, chunk_cols, out=y[n0])
        else:
            _scatter_samples(w_aug @ chunk_cols, y, n0)
    return y.reshape(n, o, oh, ow)


def conv2d_vjp(
    grad_y: np.ndarray,
    weight: np.ndarray,
    input_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    grad_y = np.ascontiguousarray(grad_y)
    n, o, oh, ow = grad_y.shape
    _, cg, kh, kw = weight.shape
    h, w = input_size
    top, _, left, _ = padding
    gx = np.zeros((n, cg * groups, h, w), grad_y.dtype)
    if groups > 1:
        _grouped_conv_vjp(grad_y, np.ascontiguousarray(weight), gx, groups, *stride, top, left,
                          *dilation)  # fmt: skip
        return gx
    length, rows = oh * ow, cg * kh * kw
    w_t = np.ascontiguousarray(weight.reshape(o, rows).T)
    g = grad_y.reshape(n, o, length)
    nb = _chunk(n, rows * length)
    gathered = np.empty((o, nb * length), grad_y.dtype)
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        if count == 1:
            chunk_g = g[n0]
        else:
            chunk_g = gathered[:, : count * length]
            _gather_samples(g, chunk_g, n0)
        gcols = w_t @ chunk_g
        if _is_pointwise((kh, kw), stride, padding) and count == 1:
            gx[n0] = gcols.reshape(cg, h, w)
        else:
            _col2im(gcols, gx[n0 : n0 + count], kh, kw, *stride, top, left, *dilation, oh, ow)
    return gx
