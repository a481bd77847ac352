"""2-D convolution on the GPU. Same functions as ``kernels/cpu/conv.py``.

Both directions are implicit GEMMs on the shared-memory tiled GEMM kernel of
``kernels/cuda/linear.py`` (``TILE x TILE`` output tiles, ``A`` and ``B`` tiles staged in shared
memory): the im2col index arithmetic is done on the fly while a tile is loaded, so no column
matrix is ever written. One launch covers every group (grid axis ``z``) and the whole batch.

* Forward, per group ``g``: ``Y_g[o', (n, p, q)] = sum_{(c, i, j)} W[g*O' + o', c, i, j]
  * X_g[(c, i, j), (n, p, q)]`` with ``X_g`` the im2col matrix, read as
  ``x[n, g*C' + c, p*s_h - top + i*d_h, q*s_w - left + j*d_w]`` (zero outside the input, so the
  input is never padded); the bias is added as each output is stored.
* Input gradient, as a transposed implicit GEMM (chosen over a one-thread-per-input gather because
  it reuses the tiled kernel and its shared-memory reuse of the weights and of ``dL/dy``; like the
  gather it is deterministic and needs no atomics): per group ``g``,
  ``dX_g[c, (n, h, w)] = sum_{(o', i, j)} W[g*O' + o', c, i, j] * G_g[(o', i, j), (n, h, w)]``
  where ``G_g`` reads ``dL/dy[n, g*O' + o', p, q]`` at ``p = (h + top - i*d_h) / s_h`` and
  ``q = (w + left - j*d_w) / s_w`` when both divisions are exact and land inside ``dL/dy``, and
  zero otherwise. With stride ``s`` only about ``1 / (s_h * s_w)`` of that reduction is non-zero:
  a strided layer multiplies zeros there.

float32 accumulates in float32 (rounding error ``~ sqrt(C' * kh * kw) * 6e-8`` relative to the
terms), float64 in float64.

Unmeasured: there is no GPU on the machine this was written on, so neither choice is a measured
one (the tests run the kernels under Numba's CUDA simulator, which says nothing about speed). A
benchmark on a GPU should compare, on VGG-16's and ResNet-50's convolutions (stride 1 and 2,
1x1, 3x3 and 7x7, depthwise) at batch 1 and 32: this implicit GEMM against a direct kernel (one
thread per output, no shared memory); for the input gradient of strided layers, against the gather
(one thread per input element, summing only the taps whose divisions are exact); both against
cuDNN (through CuPy or torch) as the ceiling. Depthwise convolutions (``C' = O' = 1``) leave all
but one row of each 16 x 16 tile idle here and are the likeliest to want the direct kernel.
"""

from __future__ import annotations

from numba import cuda

from npxai.reference.conv import conv2d_output_size

from . import as_device
from .linear import _check_dtype, _gemm_kernel, _launch_gemm, _no_bias

# params, both directions: (C', O', kh, kw, H, W, oh, ow, s_h, s_w, top, left, d_h, d_w, has_bias)


@cuda.jit(device=True)
def _load_weight(tile, ty, tx, weight, params, z, row, kk):
    # A[o', (c, i, j)] = W[z*O' + o', c, i, j]
    og, kh, kw = params[1], params[2], params[3]
    c = kk // (kh * kw)
    r = kk - c * (kh * kw)
    i = r // kw
    tile[ty, tx] = weight[z * og + row, c, i, r - i * kw]


@cuda.jit(device=True)
def _load_input_columns(tile, ty, tx, x, params, z, kk, col):
    # B[(c, i, j), (n, p, q)] = x[n, z*C' + c, p*s_h - top + i*d_h, q*s_w - left + j*d_w], or 0
    cg, _, kh, kw, h, w, oh, ow, sh, sw, top, left, dh, dw, _ = params
    c = kk // (kh * kw)
    r = kk - c * (kh * kw)
    i = r // kw
    j = r - i * kw
    n = col // (oh * ow)
    s = col - n * (oh * ow)
    p = s // ow
    q = s - p * ow
    hi = p * sh - top + i * dh
    wi = q * sw - left + j * dw
    if 0 <= hi < h and 0 <= wi < w:
        tile[ty, tx] = x[n, z * cg + c, hi, wi]
    else:
        tile[ty, tx] = 0


@cuda.jit(device=True)
def _store_output(y, bias, params, z, row, col, value):
    # y[n, z*O' + o', p, q] = C[o', (n, p, q)] + b[z*O' + o']
    oh, ow = params[6], params[7]
    o = z * params[1] + row
    n = col // (oh * ow)
    s = col - n * (oh * ow)
    p = s // ow
    if params[14]:
        y[n, o, p, s - p * ow] = value + bias[o]
    else:
        y[n, o, p, s - p * ow] = value


@cuda.jit(device=True)
def _load_weight_transposed(tile, ty, tx, weight, params, z, row, kk):
    # A[c, (o', i, j)] = W[z*O' + o', c, i, j]
    og, kh, kw = params[1], params[2], params[3]
    oo = kk // (kh * kw)
    r = kk - oo * (kh * kw)
    i = r // kw
    tile[ty, tx] = weight[z * og + oo, row, i, r - i * kw]


@cuda.jit(device=True)
def _load_grad_columns(tile, ty, tx, grad_y, params, z, kk, col):
    # B[(o', i, j), (n, h, w)] = dL/dy[n, z*O' + o', p, q] where h = p*s_h - top + i*d_h and
    # w = q*s_w - left + j*d_w have integer solutions p, q inside dL/dy; 0 otherwise
    _, og, kh, kw, h, w, oh, ow, sh, sw, top, left, dh, dw, _ = params
    oo = kk // (kh * kw)
    r = kk - oo * (kh * kw)
    i = r // kw
    j = r - i * kw
    n = col // (h * w)
    s = col - n * (h * w)
    hh = s // w
    ww = s - hh * w
    th = hh + top - i * dh
    tw = ww + left - j * dw
    if th >= 0 and tw >= 0 and th % sh == 0 and tw % sw == 0 and th // sh < oh and tw // sw < ow:
        tile[ty, tx] = grad_y[n, z * og + oo, th // sh, tw // sw]
    else:
        tile[ty, tx] = 0


@cuda.jit(device=True)
def _store_input_grad(gx, bias, params, z, row, col, value):
    # dL/dx[n, z*C' + c, h, w] = C[c, (n, h, w)]
    h, w = params[4], params[5]
    n = col // (h * w)
    s = col - n * (h * w)
    hh = s // w
    gx[n, z * params[0] + row, hh, s - hh * w] = value


def _params(cg, og, kernel, size, out, stride, padding, dilation, has_bias):
    top, _, left, _ = padding
    values = (cg, og, *kernel, *size, *out, *stride, top, left, *dilation, has_bias)
    return tuple(int(v) for v in values)


def _check_groups(c, o, cg, groups):
    if groups < 1 or o % groups or c != cg * groups:
        raise ValueError(
            f"{c} input and {o} output channels do not fit {groups} groups of weight with {cg} "
            "input channels each"
        )


def conv2d(x, weight, bias, stride, padding, dilation, groups):
    """Grouped 2-D cross-correlation.

    With ``G = groups``, ``C' = C / G`` input and ``O' = O / G`` output channels per group, output
    channel ``o`` in group ``g = o // O'`` is::

        y[n, o, p, q] = b[o] + sum_{c < C', i, j} W[o, c, i, j] * xpad[n, g*C' + c, p*s_h + i*d_h,
                                                                          q*s_w + j*d_w]

    ``x`` is ``(N, C, H, W)``, ``W`` is ``(O, C', kh, kw)``; ``xpad`` is ``x`` zero-padded by
    ``padding = (top, bottom, left, right)``. One implicit-GEMM launch (``M = O'``,
    ``K = C' * kh * kw``, ``N = N * oh * ow``, ``G`` problems); returns a new device array.
    """
    x, weight = as_device(x), as_device(weight)
    bias = None if bias is None else as_device(bias)
    dtype = _check_dtype(x, weight, *([] if bias is None else [bias]))
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    _check_groups(c, o, cg, groups)
    oh, ow = conv2d_output_size((h, w), (kh, kw), stride, padding, dilation)
    if oh < 1 or ow < 1:
        raise ValueError(f"a {kh}x{kw} kernel leaves no output on a padded {h}x{w} input")
    y = cuda.device_array((n, o, oh, ow), dtype)
    og = o // groups
    params = _params(
        cg, og, (kh, kw), (h, w), (oh, ow), stride, padding, dilation, bias is not None
    )
    kernel = _gemm_kernel(_load_weight, _load_input_columns, _store_output, dtype)
    bias_arg = _no_bias(dtype) if bias is None else bias
    _launch_gemm(kernel, weight, x, y, bias_arg, og, n * oh * ow, cg * kh * kw, params, groups)
    return y


def conv2d_vjp(grad_y, weight, input_size, stride, padding, dilation, groups):
    """Input gradient of :func:`conv2d` (a transposed convolution)::

        dL/dxpad[n, g*C' + c, p*s_h + i*d_h, q*s_w + j*d_w] += sum_{o' < O'} W[g*O' + o', c, i, j]
                                                                * dL/dy[n, g*O' + o', p, q]

    then the padding is cropped away. Input positions that no window reaches get zero. One
    transposed implicit-GEMM launch (``M = C'``, ``K = O' * kh * kw``, ``N = N * H * W``, ``G``
    problems), each input gradient summed by one thread: deterministic, no atomics. Returns a new
    ``(N, C' * G, H, W)`` device array.
    """
    grad_y, weight = as_device(grad_y), as_device(weight)
    dtype = _check_dtype(grad_y, weight)
    n, o, oh, ow = grad_y.shape
    o_w, cg, kh, kw = weight.shape
    _check_groups(cg * groups, o, cg, groups)
    if o_w != o:
        raise ValueError(f"dL/dy has {o} channels, the weight {o_w}")
    h, w = input_size
    gx = cuda.device_array((n, cg * groups, h, w), dtype)
    og = o // groups
    params = _params(cg, og, (kh, kw), (h, w), (oh, ow), stride, padding, dilation, False)
    kernel = _gemm_kernel(_load_weight_transposed, _load_grad_columns, _store_input_grad, dtype)
    m, k = cg, og * kh * kw
    _launch_gemm(kernel, weight, grad_y, gx, _no_bias(dtype), m, n * h * w, k, params, groups)
    return gx
