"""``MultiheadAttention``: torch's self-attention layer, its parameters under torch's keys.

For an input ``x`` of ``S`` tokens of ``E`` features, ``H`` heads of ``d = E / H`` features::

    q = x W_q^T + b_q,  k = x W_k^T + b_k,  v = x W_v^T + b_v      (W_q; W_k; W_v = in_proj_weight)
    A_h = softmax(q_h k_h^T / sqrt(d) + M)                           (per head h, over the keys)
    o_h = A_h v_h,      y = concat_h(o_h) W_o^T + b_o                (W_o = out_proj.weight)

``M`` is the fixed ``attn_mask`` (0 where allowed; a boolean mask's ``True`` is ``-inf``: not
allowed) or the causal mask. Its maths runs on the backend's dense and softmax kernels, the
per-head products on NumPy's ``matmul`` (BLAS); host backends only. LRP through it:
:mod:`npxai.lrp.attention`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import backend_modules, backend_or_default
from .checks import finite_number, flag, positive_int, shown
from .errors import BackendError, LayerInputError
from .init import uniform_fan_in
from .module import Layer


@dataclass
class AttentionParts:
    """A forward pass's intermediate values, each head apart: ``q``, ``k``, ``v`` and ``o`` of
    shape ``(N, H, S, d)``; ``scores`` (``q k^T / sqrt(d) + M``) and ``weights`` (``A``) of shape
    ``(N, H, S, S)``; ``merged``, the heads' outputs side by side, ``(N, S, E)``."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    o: np.ndarray
    merged: np.ndarray


class MultiheadAttention(Layer):
    """``torch.nn.MultiheadAttention`` as self-attention (query, key and value are the one input),
    in eval mode (``dropout`` is accepted and has no effect), with torch's keys
    ``in_proj_weight`` ``(3E, E)``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``
    (``bias=False``: neither bias). ``batch_first=True``: inputs ``(N, S, E)``; ``False`` (torch's
    default): ``(S, N, E)``. The mask is fixed with the layer: ``attn_mask`` of shape ``(S, S)``,
    boolean (``True``: the query may not attend to that key) or float (added to the scores), or
    ``is_causal=True`` (each token attends to itself and those before it). torch's
    ``add_bias_kv``, ``add_zero_attn``, ``kdim`` and ``vdim`` are not supported (``ValueError``).
    VJP: backpropagation through the formula above."""

    vjp_reads = frozenset({"input"})

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        attn_mask: np.ndarray | None = None,
        is_causal: bool = False,
    ):
        super().__init__()
        self.embed_dim = positive_int(embed_dim, "MultiheadAttention: embed_dim")
        self.num_heads = positive_int(num_heads, "MultiheadAttention: num_heads")
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                f"({num_heads}): each head takes embed_dim / num_heads features"
            )
        self.dropout = finite_number(dropout, "MultiheadAttention: dropout", minimum=0)
        if self.dropout >= 1:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout!r}")
        for name, value, default in (("add_bias_kv", add_bias_kv, False),
                                     ("add_zero_attn", add_zero_attn, False),
                                     ("kdim", kdim, None), ("vdim", vdim, None)):  # fmt: skip
            if value is not default and value != embed_dim:
                raise ValueError(
                    f"MultiheadAttention: {name}={shown(value)} is not supported (self-attention "
                    f"with one embed_dim only); leave it at {default!r}"
                )
        self.batch_first = flag(batch_first, "MultiheadAttention: batch_first")
        self.is_causal = flag(is_causal, "MultiheadAttention: is_causal")
        self.attn_mask = None if attn_mask is None else self._mask(attn_mask)
        if self.is_causal and self.attn_mask is not None:
            raise ValueError("MultiheadAttention: give attn_mask or is_causal=True, not both")
        self.head_dim = embed_dim // num_heads
        with_bias = flag(bias, "MultiheadAttention: bias")
        e = embed_dim
        self.register_parameter("in_proj_weight", uniform_fan_in((3 * e, e), e))
        self.register_parameter("in_proj_bias", np.zeros(3 * e, np.float32) if with_bias else None)
        self.register_parameter("out_proj.weight", uniform_fan_in((e, e), e))
        self.register_parameter("out_proj.bias", np.zeros(e, np.float32) if with_bias else None)

    @staticmethod
    def _mask(mask: object) -> np.ndarray:
        """The additive mask (0 where allowed, ``-inf`` for a boolean ``True``) as float64."""
        array = np.asarray(mask)
        if array.ndim != 2 or array.shape[0] != array.shape[1] or array.dtype.kind not in "bf":
            raise ValueError(
                "MultiheadAttention: attn_mask must be a boolean or float array of shape (S, S) "
                f"(queries x keys), got {array.dtype} {array.shape}"
            )
        if array.dtype.kind == "b":
            if array.all(axis=1).any():
                row = int(np.flatnonzero(array.all(axis=1))[0])
                raise ValueError(
                    f"MultiheadAttention: attn_mask row {row} masks every key; each query must "
                    "attend to at least one (its softmax would be 0/0)"
                )
            return np.where(array, -np.inf, 0.0)
        if np.isnan(array).any() or np.isposinf(array).any():
            raise ValueError("MultiheadAttention: a float attn_mask may not hold NaN or +inf")
        if np.isneginf(array).all(axis=1).any():
            raise ValueError(
                "MultiheadAttention: a row of attn_mask is -inf everywhere; each query must "
                "attend to at least one key"
            )
        return array.astype(np.float64)

    def mask(self, length: int) -> np.ndarray | None:
        """The additive mask ``M`` for ``length`` tokens (``None``: no mask)."""
        if self.is_causal:
            return np.triu(np.full((length, length), -np.inf), 1)
        return self.attn_mask

    def check_input(self, x: np.ndarray) -> None:
        layout = "(N, S, E)" if self.batch_first else "(S, N, E)"
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise LayerInputError(
                f"expected input of shape {layout} with E = {self.embed_dim}, got shape {x.shape}"
            )
        length = x.shape[1 if self.batch_first else 0]
        if self.attn_mask is not None and self.attn_mask.shape != (length, length):
            raise LayerInputError(
                f"attn_mask has shape {self.attn_mask.shape}, but the input has {length} tokens: "
                f"expected ({length}, {length})"
            )

    def _ops(self, backend: str | None):
        backend = backend_or_default(backend)
        if backend == "cuda":
            raise BackendError(
                "MultiheadAttention does not run on the cuda backend yet; use backend='numba'"
            )
        return backend_modules(backend)

    def parameter(self, name: str, like: np.ndarray) -> np.ndarray | None:
        """Parameter ``name`` in ``like``'s dtype (``None`` if absent)."""
        value = getattr(self, name)
        return None if value is None else value.astype(like.dtype, copy=False)

    def split_heads(self, t: np.ndarray) -> np.ndarray:
        """``(N, S, E) -> (N, H, S, d)``."""
        n, s, _ = t.shape
        return t.reshape(n, s, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    @staticmethod
    def merge_heads(t: np.ndarray) -> np.ndarray:
        """``(N, H, S, d) -> (N, S, E)``."""
        n, h, s, d = t.shape
        return np.ascontiguousarray(t.transpose(0, 2, 1, 3)).reshape(n, s, h * d)

    def tokens(self, x: np.ndarray) -> np.ndarray:
        """The input as ``(N, S, E)``, whatever ``batch_first``."""
        return x if self.batch_first else x.transpose(1, 0, 2)

    def untokens(self, t: np.ndarray) -> np.ndarray:
        """``(N, S, E)`` back to the input's layout."""
        return t if self.batch_first else np.ascontiguousarray(t.transpose(1, 0, 2))

    def projections(self, t: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """``(W_q, b_q), (W_k, b_k), (W_v, b_v)`` in ``t``'s dtype."""
        w = self.parameter("in_proj_weight", t)
        b = self.parameter("in_proj_bias", t)
        e = self.embed_dim
        return [(w[i * e : (i + 1) * e], None if b is None else b[i * e : (i + 1) * e])
                for i in range(3)]  # fmt: skip

    def parts(self, x: np.ndarray, backend: str | None = None) -> AttentionParts:
        """The forward pass's intermediate values for input ``x`` (see :class:`AttentionParts`)."""
        ops = self._ops(backend)
        t = np.ascontiguousarray(self.tokens(x))
        q, k, v = (self.split_heads(ops.linear.linear(t, w, b)) for w, b in self.projections(t))
        scores = np.matmul(q, k.transpose(0, 1, 3, 2))
        scores *= x.dtype.type(1 / np.sqrt(self.head_dim))
        mask = self.mask(t.shape[1])
        if mask is not None:
            scores += mask.astype(x.dtype)
        weights = ops.activation.softmax(scores, 3)
        o = np.matmul(weights, v)
        return AttentionParts(q, k, v, scores, weights, o, self.merge_heads(o))

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        ops = self._ops(backend)
        merged = self.parts(x, backend).merged
        y = ops.linear.linear(
            merged, self.parameter("out_proj.weight", x), self.parameter("out_proj.bias", x)
        )
        return self.untokens(y)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        ops = self._ops(backend)
        p = self.parts(x, backend)
        g = ops.linear.linear_vjp(self.tokens(grad_y), self.parameter("out_proj.weight", x))
        g_o = self.split_heads(g)
        g_weights = np.matmul(g_o, p.v.transpose(0, 1, 3, 2))
        g_v = np.matmul(p.weights.transpose(0, 1, 3, 2), g_o)
        g_scores = ops.activation.softmax_vjp(g_weights, p.weights, 3)
        g_scores *= x.dtype.type(1 / np.sqrt(self.head_dim))
        g_q = np.matmul(g_scores, p.k)
        g_k = np.matmul(g_scores.transpose(0, 1, 3, 2), p.q)
        t = self.tokens(x)
        grad = None
        for g_h, (w, _) in zip((g_q, g_k, g_v), self.projections(t), strict=True):
            part = ops.linear.linear_vjp(self.merge_heads(g_h), w)
            grad = part if grad is None else grad + part
        return self.untokens(grad)

    def extra_repr(self) -> str:
        mask = ", is_causal=True" if self.is_causal else ""
        mask += f", attn_mask={self.attn_mask.shape}" if self.attn_mask is not None else ""
        return (
            f"{self.embed_dim}, num_heads={self.num_heads}, bias={self.in_proj_bias is not None}, "
            f"batch_first={self.batch_first}{mask}"
        )
