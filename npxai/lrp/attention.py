"""LRP steps for attention: the matrix product and softmax rules on their own layers, and
AttnLRP and CP-LRP through a ``MultiheadAttention`` layer, built from the same two steps.

Each step runs on the host backends; the ratios ``R / stab(z)`` are the backend's element-wise
kernel (``relevance_ratio`` of ``npxai/reference/lrp.py`` and its Numba twin), the dense maps
the backend's ``linear`` kernels, the per-head products NumPy's ``matmul`` (BLAS).
"""

from __future__ import annotations

import numpy as np

from .. import layers as L
from ..attention import MultiheadAttention
from ..backend import backend_modules
from ..module import Record
from .rules import AttnLRPRule, CPLRPRule, ProductRule

_T = (0, 1, 3, 2)  # swaps the last two axes of (N, H, S, S) and (N, H, S, d)


def matrix_product(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, relevance: np.ndarray, rule: ProductRule,
    backend: str,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(R_a, R_b)`` for ``y = a @ b`` under :class:`~npxai.lrp.rules.ProductRule`: ``s = R /
    stab(y)``, ``R_a = a * (s b^T)``, ``R_b = b * (a^T s)``, halved (``"uniform"``) or the gate's
    set to 0 (``"signal"``), each summed to its factor's shape."""
    s = backend_modules(backend).lrp.relevance_ratio(relevance, y, rule.epsilon, rule.stabilizer)
    swap = (*range(s.ndim - 2), s.ndim - 1, s.ndim - 2)
    parts = [None, None]
    for i, factor in enumerate((a, b)):
        if rule.split == "uniform" or i != rule.gate:
            back = np.matmul(s, b.transpose(swap)) if i == 0 else np.matmul(a.transpose(swap), s)
            share = factor * back
            share = share / 2 if rule.split == "uniform" else share
            parts[i] = L.sum_to_shape(share, factor.shape)
        else:
            parts[i] = np.zeros_like(factor)
    return parts[0], parts[1]


def softmax_relevance(x: np.ndarray, y: np.ndarray, relevance: np.ndarray, dim: int) -> np.ndarray:
    """:class:`~npxai.lrp.rules.SoftmaxRule`: ``R_in = x * (R - y sum R)`` along ``dim``, 0 where
    ``x = -inf`` (a masked score)."""
    total = relevance.sum(axis=dim, keepdims=True)
    finite = np.isfinite(x)
    return np.where(finite, np.where(finite, x, 0) * (relevance - y * total), 0)


def matmul_step(record: Record, rule: ProductRule, relevance: np.ndarray, backend: str) -> tuple:
    """:class:`~npxai.lrp.rules.ProductRule` on a ``MatMul`` layer."""
    a, b = record.input
    return matrix_product(a, b, record.output, relevance, rule, backend)


def softmax_step(record: Record, relevance: np.ndarray) -> np.ndarray:
    """:class:`~npxai.lrp.rules.SoftmaxRule` on a ``Softmax`` layer."""
    return softmax_relevance(record.input, record.output, relevance, record.layer.dim)


def attention_step(
    record: Record, rule: AttnLRPRule | CPLRPRule, relevance: np.ndarray, backend: str
) -> np.ndarray:
    """AttnLRP or CP-LRP (:class:`~npxai.lrp.rules.AttnLRPRule`,
    :class:`~npxai.lrp.rules.CPLRPRule`) through a ``MultiheadAttention`` layer, from the output's
    relevance to the input's. The forward pass's intermediate values are computed again from the
    recorded input."""
    layer: MultiheadAttention = record.layer
    ops = backend_modules(backend)
    x = record.input
    eps = rule.epsilon

    def ratio(r: np.ndarray, z: np.ndarray) -> np.ndarray:
        return ops.lrp.relevance_ratio(r, z, eps, "sign")

    t, p = layer.tokens(x), layer.parts(x, backend)
    # y = o W_o^T + b_o: the epsilon rule
    s = ratio(layer.tokens(relevance), layer.tokens(record.output))
    r_merged = p.merged * ops.linear.linear_vjp(s, layer.parameter("out_proj.weight", x))
    r_o = layer.split_heads(r_merged)
    uniform = ProductRule("uniform", epsilon=eps)
    if isinstance(rule, CPLRPRule):  # A held constant: o = A v is linear in v
        _, r_v = matrix_product(p.weights, p.v, p.o, r_o, ProductRule("signal", 0, eps), backend)
        shares = [None, None, r_v]
    else:
        r_weights, r_v = matrix_product(p.weights, p.v, p.o, r_o, uniform, backend)
        r_scores = softmax_relevance(p.scores, p.weights, r_weights, 3)
        q = p.q * x.dtype.type(1 / np.sqrt(layer.head_dim))
        products = p.scores  # the scores before the mask: without one, the scores themselves
        if layer.mask(t.shape[1]) is not None:  # the mask is a bias: it absorbs its share
            products = np.matmul(q, p.k.transpose(_T))
            r_scores = products * ratio(r_scores, np.where(np.isfinite(p.scores), p.scores, 1))
        r_q, r_k = matrix_product(q, p.k.transpose(_T), products, r_scores, uniform, backend)
        shares = [r_q, r_k.transpose(_T), r_v]
    r_x = None
    for share, z, (w, _) in zip(shares, (p.q, p.k, p.v), layer.projections(t), strict=True):
        if share is None:
            continue
        part = t * ops.linear.linear_vjp(ratio(layer.merge_heads(share), layer.merge_heads(z)), w)
        r_x = part if r_x is None else r_x + part
    return layer.untokens(r_x)
