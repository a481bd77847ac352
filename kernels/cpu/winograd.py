"""3x3 convolutions with stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016), compiled.

Every 2x2 block of outputs is computed from the 4x4 input tile ``d`` under it and the 3x3 kernel
``g`` as

    Y = A^T [ (G g G^T) * (B^T d B) ] A      (* element-wise over the 4x4 transformed tile)

    B^T = [[1, 0, -1, 0],    G = [[1,    0,   0  ],    A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],         [1/2,  1/2, 1/2],           [0, 1, -1, -1]]
           [0, -1, 1, 0],         [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]        [0,    0,   1  ]]

Summed over the input channels, the 16 element-wise products become 16 matrix products
``M[k] = U[k] @ V[k]`` with ``U[k] = (G g G^T)[k]`` of shape (out, in) and ``V[k] = (B^T d B)[k]``
of shape (in, tiles), one BLAS call each: 16 multiply-adds per 4 outputs and input channel where
im2col + GEMM needs 36, so the GEMM does 4/9 of the direct convolution's multiply-adds. The
transforms are additions (and halvings), exact in binary up to the rounding of each sum; the result
differs from the direct sum by rounding alone (the kernel tests hold it to the NumPy reference as
tightly as the im2col path: 1e-12 in float64, 1e-5 in float32).
"""

import numpy as np
from numba import njit, prange

from . import blas
from .scratch import workspace

#: Elements of ``V`` (and of ``M``) per chunk: samples are batched into one pass up to this size.
CHUNK_ELEMENTS = 2**23


@njit(parallel=True, cache=True)
def _transform_weight(w, u, transposed):
    # u[k, o, c] = (G w[o, c] G^T)[k // 4, k % 4]; transposed: u[k, c, o] = (G w'[o, c] G^T)[...]
    # with the kernel flipped, w'[o, c, i, j] = w[o, c, 2 - i, 2 - j] (the input gradient's kernel)
    i0, i2 = (2, 0) if transposed else (0, 2)
    for task in prange(u.shape[1]):
        a = np.int64(task)  # prange's index is unsigned: mixed with b below it would make floats
        for b in range(u.shape[2]):
            oo = b if transposed else a
            cc = a if transposed else b
            g00, g01, g02 = w[oo, cc, i0, i0], w[oo, cc, i0, 1], w[oo, cc, i0, i2]
            g10, g11, g12 = w[oo, cc, 1, i0], w[oo, cc, 1, 1], w[oo, cc, 1, i2]
            g20, g21, g22 = w[oo, cc, i2, i0], w[oo, cc, i2, 1], w[oo, cc, i2, i2]
            # rows 1 and 2 of G g: (g0 + g2 +- g1) / 2
            s0, s1, s2 = 0.5 * (g00 + g20), 0.5 * (g01 + g21), 0.5 * (g02 + g22)
            h0, h1, h2 = 0.5 * g10, 0.5 * g11, 0.5 * g12
            t10, t11, t12 = s0 + h0, s1 + h1, s2 + h2
            t20, t21, t22 = s0 - h0, s1 - h1, s2 - h2
            # each row times G^T: (t0, (t0 + t1 + t2) / 2, (t0 - t1 + t2) / 2, t2)
            u[0, a, b] = g00
            u[1, a, b] = 0.5 * (g00 + g01 + g02)
            u[2, a, b] = 0.5 * (g00 - g01 + g02)
            u[3, a, b] = g02
            u[4, a, b] = t10
            u[5, a, b] = 0.5 * (t10 + t11 + t12)
            u[6, a, b] = 0.5 * (t10 - t11 + t12)
            u[7, a, b] = t12
            u[8, a, b] = t20
            u[9, a, b] = 0.5 * (t20 + t21 + t22)
            u[10, a, b] = 0.5 * (t20 - t21 + t22)
            u[11, a, b] = t22
            u[12, a, b] = g20
            u[13, a, b] = 0.5 * (g20 + g21 + g22)
            u[14, a, b] = 0.5 * (g20 - g21 + g22)
            u[15, a, b] = g22


@njit(parallel=True, cache=True)
def _transform_input(x, v, top, left, th, tw, r0):
    # tile rows r0 .. r0 + R of the batch (row r: sample r // th, tile row r % th):
    # v[k, c, (r - r0, tj)] = (B^T d B)[k // 4, k % 4], d = x[s, c] zero-padded, rows 2ti - top ..
    # 2ti - top + 3, columns 2tj - left .. 2tj - left + 3
    h, w = x.shape[2], x.shape[3]
    c, count = v.shape[1], v.shape[2] // tw
    for task in prange(c * count):
        ch, r = task // count, r0 + task % count
        s, ti = r // th, r % th
        # the tile row's 4 input rows, zero-padded, even and odd columns apart: tile tj's columns
        # are rows[., 0, tj], rows[., 1, tj], rows[., 0, tj + 1], rows[., 1, tj + 1] (contiguous
        # runs over tj, so that the loops below vectorise)
        rows = np.zeros((4, 2, tw + 1), v.dtype)
        for a in range(4):
            hi = 2 * ti - top + a
            if 0 <= hi < h:
                for jj in range(max(0, left), min(2 * tw + 2, w + left)):
                    rows[a, jj % 2, jj // 2] = x[s, ch, hi, jj - left]
        # B^T down the rows: d0 - d2, d1 + d2, d2 - d1, d1 - d3 (in place, top row first)
        for parity in range(2):
            for jj in range(tw + 1):
                d0, d1 = rows[0, parity, jj], rows[1, parity, jj]
                d2, d3 = rows[2, parity, jj], rows[3, parity, jj]
                rows[0, parity, jj] = d0 - d2
                rows[1, parity, jj] = d1 + d2
                rows[2, parity, jj] = d2 - d1
                rows[3, parity, jj] = d1 - d3
        base = (r - r0) * tw
        for a in range(4):
            for tj in range(tw):
                e0, e1 = rows[a, 0, tj], rows[a, 1, tj]
                e2, e3 = rows[a, 0, tj + 1], rows[a, 1, tj + 1]
                # times B along the columns: e0 - e2, e1 + e2, e2 - e1, e1 - e3
                v[4 * a, ch, base + tj] = e0 - e2
                v[4 * a + 1, ch, base + tj] = e1 + e2
                v[4 * a + 2, ch, base + tj] = e2 - e1
                v[4 * a + 3, ch, base + tj] = e1 - e3


@njit(parallel=True, cache=True)
def _transform_output(m, bias, y, th, tw, r0):
    # tile rows r0 .. r0 + R: y[s, o, 2ti + i, 2tj + j] = (A^T M A)[i, j] + bias[o],
    # M = m[:, o, (r - r0, tj)], r = s * th + ti
    o, oh, ow = m.shape[1], y.shape[2], y.shape[3]
    count = m.shape[2] // tw
    for task in prange(o * count):
        oo, r = task // count, r0 + task % count
        s, p = r // th, 2 * (r % th)
        beta = bias[oo]
        base = (r - r0) * tw
        for tj in range(tw):
            col = base + tj
            # A^T M: rows m0 + m1 + m2 and m1 - m2 - m3 (m_a = M[4a : 4a + 4])
            r00 = m[0, oo, col] + m[4, oo, col] + m[8, oo, col]
            r01 = m[1, oo, col] + m[5, oo, col] + m[9, oo, col]
            r02 = m[2, oo, col] + m[6, oo, col] + m[10, oo, col]
            r03 = m[3, oo, col] + m[7, oo, col] + m[11, oo, col]
            r10 = m[4, oo, col] - m[8, oo, col] - m[12, oo, col]
            r11 = m[5, oo, col] - m[9, oo, col] - m[13, oo, col]
            r12 = m[6, oo, col] - m[10, oo, col] - m[14, oo, col]
            r13 = m[7, oo, col] - m[11, oo, col] - m[15, oo, col]
            q = 2 * tj
            # times A: columns r0 + r1 + r2 and r1 - r2 - r3 (odd sizes: the last tile is cut)
            y[s, oo, p, q] = r00 + r01 + r02 + beta
            if q + 1 < ow:
                y[s, oo, p, q + 1] = r01 - r02 - r03 + beta
            if p + 1 < oh:
                y[s, oo, p + 1, q] = r10 + r11 + r12 + beta
                if q + 1 < ow:
                    y[s, oo, p + 1, q + 1] = r11 - r12 - r13 + beta


def conv3x3(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    padding: tuple[int, int, int, int],
    transposed: bool = False,
) -> np.ndarray:
    """``x`` (N, C, H, W) convolved with ``weight`` (O, C, 3, 3), stride 1, dilation 1, one group,
    zero ``padding`` (top, bottom, left, right), plus ``bias`` (O,) if given. ``transposed``: with
    the flipped, transposed kernel ``weight[:, :, ::-1, ::-1].swapaxes(0, 1)`` instead (``x`` has
    O channels, the result C), made inside the weight transform, without a copy of ``weight``."""
    n, c, h, w = x.shape
    o = weight.shape[1] if transposed else weight.shape[0]
    top, bottom, left, right = padding
    oh, ow = h + top + bottom - 2, w + left + right - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    u = workspace("winograd U", (16, o, c), x.dtype)
    _transform_weight(weight, u, transposed)
    b = np.zeros(o, x.dtype) if bias is None else bias
    y = np.empty((n, o, oh, ow), x.dtype)
    # tile rows of the whole batch, a chunk at a time: its V and M stay in the cache
    rows = max(1, CHUNK_ELEMENTS // (16 * max(c, o) * tw))
    for r0 in range(0, n * th, rows):
        count = min(rows, n * th - r0)
        v = workspace("winograd V", (16, c, count * tw), x.dtype)
        m = workspace("winograd M", (16, o, count * tw), x.dtype)
        _transform_input(x, v, top, left, th, tw, r0)
        blas.matmul(u, v, out=m)
        _transform_output(m, b, y, th, tw, r0)
    return y
