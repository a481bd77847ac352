"""Layer-wise Relevance Propagation rules.

A rule for a layer that computes ``z = W x + b`` (Linear, Conv2d; and, without parameters to
modify, average pooling and batch norm) says how it modifies the layer's input, its parameters and
the denominator. One generic step (:func:`npxai.lrp.step.linear_step`) does the rest, for every rule
and on every backend::

    R_in = sum_g c_g sum_{t in g} x'_t * (W'_t^T (R_out / stab(z_g))),   z_g = sum_{t in g} W'_t x'_t + b'_t

A rule's :meth:`~LinearRule.groups` is a list of :class:`Group` s, each of :class:`Term` s. A
term names three modifiers, functions that make ``x'``, ``W'`` and ``b'`` out of ``x``, ``W`` and
``b`` (``bias=None``: no bias); the terms of a group share one denominator (z+ adds the positive
and negative input parts), and groups are added with their coefficients (alpha-beta: ``alpha``
times the positive group minus ``beta`` times the negative). A group may ``select``
``"positive"`` or ``"negative"``: it then only takes the relevance of the neurons whose
unmodified ``z = W x + b`` has that sign (the generalised gamma). Where a stabilised denominator
is exactly zero, the neuron passes no relevance; where every modified contribution ``x'_i W'_ji``
of a neuron is zero (z+ with no positive contribution and no positive bias, ZBox at the box's
minimum), its relevance has nowhere to go and is lost. The step evaluates a term's modifiers only when
it needs them: a term whose ``x'`` is all zeros and which has no bias adds nothing and is skipped
before its ``W'`` is made.

``p+ = max(p, 0)``, ``p- = min(p, 0)``, ``sgn0(z)`` is the sign of ``z`` with ``sgn0(0) = +1``;
these modifiers and :func:`stabilize` are NumPy one-liners of ``npxai/reference/lrp.py``, with
the rest of the step's element-wise parts.
Stabilizers (``stabilizer=``): ``"sign"`` (default, Zennit's and Captum's): ``z + eps sgn0(z)``;
``"clip"`` (Zennit's ``clip=True``): ``sgn0(z) max(|z|, eps)``; ``"zero"`` (iNNvestigate's): ``z +
eps [z = 0]``.

Which layers a rule takes is data beside it: its class attribute ``layers``, a tuple of the kinds
of :mod:`npxai.lrp.kinds`, read by :meth:`Rule.supports` (a rule with a further condition
overrides that). :data:`RULES` lists the rules, in the order error messages name them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..checks import finite_number, flag, shown
from ..module import Layer
from ..reference.modifiers import (
    MODIFIERS,
    STABILIZERS,
    identity,
    minus_negative,
    minus_positive,
    negative,
    ones,
    positive,
    sgn0,
    square,
    stabilize,
)
from .kinds import (
    ATTENTION,
    FIXED_LINEAR,
    LAYER_NORMS,
    MATRIX_PRODUCTS,
    MAX_POOLS,
    PARAMETRIC,
    PRODUCTS,
    SHAPE_PRESERVING,
    SOFTMAXES,
    SUMS,
)

__all__ = [
    "STABILIZERS",
    "Modifier",
    "sgn0",
    "stabilize",
    "identity",
    "positive",
    "negative",
    "minus_positive",
    "minus_negative",
    "ones",
    "square",
    "Term",
    "Group",
    "ELEMENTWISE",
    "Rule",
    "PassRule",
    "GradientRule",
    "LinearRule",
    "EpsilonRule",
    "ZeroRule",
    "NormRule",
    "GammaRule",
    "GeneralizedGammaRule",
    "WSquareRule",
    "FlatRule",
    "ZPlusRule",
    "AlphaBetaRule",
    "ZBoxRule",
    "AveragePoolRule",
    "LayerNormRule",
    "ProductRule",
    "SoftmaxRule",
    "AttnLRPRule",
    "CPLRPRule",
    "RULES",
    "rules_for",
]

Modifier = Callable[[np.ndarray], np.ndarray]

#: The input modifiers that every backend runs as one element-wise kernel (by name:
#: ``modify(x, "positive")`` of ``npxai/reference/lrp.py`` and its twins).
ELEMENTWISE = tuple(MODIFIERS.values())


@dataclass(frozen=True)
class Term:
    """One term ``(x', W', b')`` of a rule: the modifiers that make them out of ``x``, ``W``, ``b``
    (``bias=None``: the term has no bias). ``Term()`` is the unmodified layer."""

    input: Modifier = identity
    weight: Modifier = identity
    bias: Modifier | None = identity


@dataclass(frozen=True)
class Group:
    """Terms sharing one denominator, added with ``coefficient``; ``select`` (``"positive"``,
    ``"negative"`` or ``None``) keeps only the neurons whose unmodified ``z`` has that sign."""

    terms: list[Term] = field(default_factory=lambda: [Term()])
    coefficient: float = 1.0
    select: str | None = None


class Rule:
    """Base of every rule: the layers it takes, and its parameters (its repr, its equality)."""

    #: The layer kinds the rule runs on (:mod:`npxai.lrp.kinds`).
    layers: tuple[type, ...] = ()

    @classmethod
    def supports(cls, layer: Layer) -> bool:
        """Whether the rule can run on ``layer``."""
        return isinstance(layer, cls.layers)

    def _parameters(self) -> dict:
        return {}

    def __repr__(self) -> str:
        shown = (f"{k}={v!r}" if np.isscalar(v) else f"{k}=array{np.shape(v)}"
                 for k, v in self._parameters().items())  # fmt: skip
        return f"{type(self).__name__}({', '.join(shown)})"

    def __eq__(self, other: object) -> bool:
        """Same class, same parameter values (arrays compared by shape and content)."""
        if type(self) is not type(other):
            return False
        mine, theirs = self._parameters(), other._parameters()
        return mine.keys() == theirs.keys() and all(
            np.shape(v) == np.shape(theirs[k]) and np.array_equal(v, theirs[k])
            for k, v in mine.items()
        )

    def __hash__(self) -> int:
        return hash((type(self), *((k, v if np.isscalar(v) else np.shape(v))
                                   for k, v in self._parameters().items())))  # fmt: skip


class PassRule(Rule):
    """``R_in = R_out``: for layers whose output has the input's values or size (activations,
    dropout, identity, and batch norm left unfolded); on the layers that re-arrange the values
    (flatten, reshape, permute) each output's relevance goes back to the input it holds, through
    the layer's VJP."""

    layers = SHAPE_PRESERVING


class GradientRule(Rule):
    """``R_in = (d y / d x)^T R_out``: the gradient's routing, on any layer. Max pooling's default
    (winner takes all: each window's relevance goes to its first maximum); on an activation or an
    unfolded batch norm it is what Zennit does to a layer its composite leaves unhooked."""

    layers = (Layer,)


class LinearRule(Rule):
    """A rule of the generic step above. Subclasses define :meth:`groups`; a custom rule is a
    subclass with a ``groups`` method of a line or two (and ``layers``, if it modifies no
    parameter and so also runs on the layers without: ``EpsilonRule.layers``). The denominator is
    :func:`stabilize` with the rule's ``stabilizer``, by name, on every backend: a rule cannot
    bring its own (the step refuses one that defines a ``stabilize`` method)."""

    layers = PARAMETRIC

    def __init__(self, epsilon: float, stabilizer: str):
        if not isinstance(stabilizer, str) or stabilizer not in STABILIZERS:
            raise ValueError(
                f"{type(self).__name__}: unknown stabilizer {shown(stabilizer)}; choose one of {', '.join(STABILIZERS)}"
            )
        self.epsilon = finite_number(epsilon, f"{type(self).__name__}: epsilon", minimum=0)
        self.stabilizer = stabilizer

    def groups(self) -> list[Group]:
        raise NotImplementedError(f"{type(self).__name__} does not define groups()")

    def _parameters(self) -> dict:
        return {"epsilon": self.epsilon, "stabilizer": self.stabilizer}


class EpsilonRule(LinearRule):
    """``R_in = x * (W^T (R_out / stab(W x + b)))``. No parameter modified, so it also runs on the
    fixed linear layers, max pooling (through its gradient, as Captum's epsilon rule does) and
    residual sums."""

    layers = PARAMETRIC + FIXED_LINEAR + MAX_POOLS + SUMS

    def __init__(self, epsilon: float = 1e-6, stabilizer: str = "sign"):
        super().__init__(epsilon, stabilizer)

    def groups(self) -> list[Group]:
        return [Group([Term()])]


class ZeroRule(EpsilonRule):
    """LRP-0: ``R_in = x * (W^T (R_out / (W x + b)))``, no stabiliser; a neuron with ``z = 0``
    passes nothing. On a ReLU network without biases it equals InputTimesGradient."""

    def __init__(self) -> None:
        super().__init__(0.0, "sign")

    def _parameters(self) -> dict:
        return {}


class NormRule(EpsilonRule):
    """The z-rule without parameters, for average pooling, means, padding, upsampling and residual
    sums (Zennit's ``Norm``): ``R_in = x * (A^T (R_out / stab(A x)))`` for the layer's fixed
    linear map ``A`` (an unfolded batch norm's is affine, ``s x + t``: the shift ``t`` is part of
    ``z``; so is a ``ConstantPad2d``'s border value, whose outputs pass nothing back); for a sum
    ``y = a + b``: ``R_a = a R / stab(a + b)``, ``R_b = b R / stab(a + b)``."""


class GammaRule(LinearRule):
    """``W' = W + gamma W+``, ``b' = b + gamma b+`` (``bias=False``: ``b' = b``); then
    ``R_in = x * (W'^T (R_out / stab(W' x + b')))`` (RelevancePropagation.jl's form; Zennit's
    sign-aware gamma is :class:`GeneralizedGammaRule`)."""

    def __init__(
        self,
        gamma: float = 0.25,
        bias: bool = True,
        epsilon: float = 1e-6,
        stabilizer: str = "sign",
    ):
        super().__init__(epsilon, stabilizer)
        self.gamma = finite_number(gamma, "GammaRule: gamma", minimum=0)
        self.bias = flag(bias, "GammaRule: bias")

    def up(self, p: np.ndarray) -> np.ndarray:
        """``p + gamma p+``."""
        return p + self.gamma * positive(p)

    def groups(self) -> list[Group]:
        return [Group([Term(identity, self.up, self.up if self.bias else identity)])]

    def _parameters(self) -> dict:
        return {"gamma": self.gamma, "bias": self.bias, **super()._parameters()}


class GeneralizedGammaRule(LinearRule):
    """Zennit's sign-aware gamma (and the rule for LeakyReLU networks): with ``up(p) = p + gamma
    p+`` and ``down(p) = p + gamma p-``, a neuron whose unmodified ``z`` is positive shares its
    relevance by ``(x+, up(W), up(b)) + (x-, down(W), 0)``, one with negative ``z`` by
    ``(x+, down(W), down(b)) + (x-, up(W), 0)``, each over its own denominator; a neuron with
    ``z = 0`` passes nothing. On non-negative inputs with positive ``z`` this is :class:`GammaRule`.
    """

    def __init__(self, gamma: float = 0.25, epsilon: float = 1e-6, stabilizer: str = "sign"):
        super().__init__(epsilon, stabilizer)
        self.gamma = finite_number(gamma, "GeneralizedGammaRule: gamma", minimum=0)

    def up(self, p: np.ndarray) -> np.ndarray:
        """``p + gamma p+``."""
        return p + self.gamma * positive(p)

    def down(self, p: np.ndarray) -> np.ndarray:
        """``p + gamma p-``."""
        return p + self.gamma * negative(p)

    def groups(self) -> list[Group]:
        up, down = self.up, self.down
        return [
            Group([Term(positive, up, up), Term(negative, down, None)], select="positive"),
            Group([Term(positive, down, down), Term(negative, up, None)], select="negative"),
        ]

    def _parameters(self) -> dict:
        return {"gamma": self.gamma, **super()._parameters()}


class WSquareRule(LinearRule):
    """``R_in = W'^T (R_out / stab(W' 1 + b'))`` with ``W' = W^2`` and ``b' = b^2`` (``bias=True``,
    Zennit's choice) or no bias (``bias=False``, iNNvestigate's and RelevancePropagation.jl's)."""

    def __init__(self, bias: bool = True, epsilon: float = 1e-6, stabilizer: str = "sign"):
        super().__init__(epsilon, stabilizer)
        self.bias = flag(bias, "WSquareRule: bias")

    def groups(self) -> list[Group]:
        return [Group([Term(ones, square, square if self.bias else None)])]

    def _parameters(self) -> dict:
        return {"bias": self.bias, **super()._parameters()}


class FlatRule(LinearRule):
    """``R_in = 1^T (R_out / stab(1 1))``: every weight 1, no bias; each output's relevance is
    spread evenly over the inputs its window covers (for a convolution, padding does not count)."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: str = "sign"):
        super().__init__(epsilon, stabilizer)

    def groups(self) -> list[Group]:
        return [Group([Term(ones, ones, None)])]


class ZPlusRule(LinearRule):
    """``z = W+ x+ + W- x- + b'``, ``R_in = x+ * (W+^T s) + x- * (W-^T s)``, ``s = R / stab(z)``
    (Zennit's z+, the positive contributions). ``bias="positive"`` (default, Zennit) puts ``b+`` in
    the denominator, ``bias="none"`` no bias."""

    def __init__(self, bias: str = "positive", epsilon: float = 1e-6, stabilizer: str = "sign"):
        super().__init__(epsilon, stabilizer)
        if not isinstance(bias, str) or bias not in ("positive", "none"):
            raise ValueError(f"ZPlusRule: bias must be 'positive' or 'none', got {shown(bias)}")
        self.bias = bias

    def groups(self) -> list[Group]:
        bias = positive if self.bias == "positive" else None
        return [Group([Term(positive, positive, bias), Term(negative, negative, None)])]

    def _parameters(self) -> dict:
        return {"bias": self.bias, **super()._parameters()}


class AlphaBetaRule(LinearRule):
    """``R_in = alpha R+ - beta R-``: ``R+`` is z+ (:class:`ZPlusRule`, with ``b+``) and ``R-``
    the same for the negative contributions (``W- x+ + W+ x-``, with ``b-``), each with its own
    denominator. ``alpha - beta = 1`` and both finite and ``>= 0`` (else ``ValueError``)."""

    def __init__(
        self, alpha: float = 2.0, beta: float = 1.0, epsilon: float = 1e-6, stabilizer: str = "sign"
    ):
        super().__init__(epsilon, stabilizer)
        alpha = finite_number(alpha, "AlphaBetaRule: alpha", minimum=0)
        beta = finite_number(beta, "AlphaBetaRule: beta", minimum=0)
        if abs(alpha - beta - 1) > 1e-12:
            raise ValueError(
                f"AlphaBetaRule needs alpha - beta = 1 and both >= 0, got alpha={alpha!r}, beta={beta!r}"
            )
        self.alpha, self.beta = alpha, beta

    def groups(self) -> list[Group]:
        return [
            Group([Term(positive, positive, positive), Term(negative, negative, None)], self.alpha),
            Group([Term(positive, negative, negative), Term(negative, positive, None)], -self.beta),
        ]

    def _parameters(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, **super()._parameters()}


class ZBoxRule(LinearRule):
    """For the first layer, with inputs bounded by ``low <= x <= high`` (finite scalars or arrays
    broadcastable to the input and to each other, ``low <= high`` everywhere, else
    ``ValueError``): ``z = W x - W+ l - W- h`` (the bias cancels, as in Zennit),
    ``R_in = x * (W^T s) - l * (W+^T s) - h * (W-^T s)``."""

    def __init__(
        self,
        low: float | np.ndarray,
        high: float | np.ndarray,
        epsilon: float = 1e-6,
        stabilizer: str = "sign",
    ):
        super().__init__(epsilon, stabilizer)
        for name, bound in (("low", low), ("high", high)):
            array = np.asarray(bound)
            if array.dtype.kind not in "iuf" or not np.isfinite(array).all():
                raise ValueError(
                    f"ZBoxRule: {name} must be a finite number or an array of finite numbers, "
                    f"got {shown(bound)}"
                )
        try:
            above = np.greater(low, high)
        except ValueError:
            raise ValueError(
                f"ZBoxRule: low {np.shape(low)} and high {np.shape(high)} must broadcast to one shape"
            ) from None
        if above.any():
            raise ValueError(
                f"ZBoxRule: low must be <= high, got low={shown(low)}, high={shown(high)}"
            )
        self.low, self.high = low, high

    def _bound(self, bound: float | np.ndarray, x: np.ndarray) -> np.ndarray:
        try:
            return np.broadcast_to(np.asarray(bound, x.dtype), x.shape)
        except ValueError:
            raise ValueError(
                f"ZBoxRule: low {np.shape(self.low)} and high {np.shape(self.high)} must broadcast to the input {x.shape}"
            ) from None

    def lows(self, x: np.ndarray) -> np.ndarray:
        """``l``, in the input's shape."""
        return self._bound(self.low, x)

    def highs(self, x: np.ndarray) -> np.ndarray:
        """``h``, in the input's shape."""
        return self._bound(self.high, x)

    def groups(self) -> list[Group]:
        return [
            Group([
                Term(identity, identity, None),
                Term(self.lows, minus_positive, None),
                Term(self.highs, minus_negative, None),
            ])
        ]  # fmt: skip

    def _parameters(self) -> dict:
        return {"low": self.low, "high": self.high, **super()._parameters()}


class AveragePoolRule(EpsilonRule):
    """Max pooling's alternative to winner-takes-all: each window's relevance is distributed as
    the NormRule distributes it over the average pool with the same window (``kernel_size``,
    ``stride``, ``padding``, ``ceil_mode``; padding counts as zeros), i.e. in proportion to the
    inputs: ``R_i = x_i sum_j [i in window j] (R_j / k) / stab(mean_{i' in window j} x_i')`` for a
    window of ``k`` positions. Runs on a ``MaxPool2d`` without dilation."""

    layers = MAX_POOLS

    @classmethod
    def supports(cls, layer: Layer) -> bool:
        return super().supports(layer) and layer.dilation == (1, 1)


class LayerNormRule(EpsilonRule):
    """The LN-rule of Ali et al. 2022 ("XAI for Transformers: Better Explanations through
    Conservative Propagation"; RelevancePropagation.jl's ``LayerNormRule``) for ``LayerNorm`` and
    ``LayerNorm2d``: the standard deviation ``sigma = sqrt(var(x) + eps)`` is held constant, so
    the layer is the linear map ``y = A x + b``, ``A_ji = w_j (delta_ij - 1/K) / sigma`` over the
    ``K`` normalised entries, and relevance flows through it as the epsilon rule's::

        R_i = x_i sum_j A_ji s_j = x_i ((w s)_i - mean_j (w s)_j) / sigma,   s = R_out / stab(y)

    (``epsilon=0``: LRP-0). On ``RMSNorm``, ``y = w x / rms`` with ``rms`` held constant, the map
    is diagonal: ``R_i = x_i w_i s_i / rms = y_i s_i`` (AttnLRP's identity rule for it, ``R_i =
    R_out_i`` with ``epsilon=0``). Without a bias, ``sum_j A_ji x_i = y_j``, so ``sum_i R_i = sum_j R_j``:
    it conserves; a bias absorbs its share ``b_j s_j``. RelevancePropagation.jl writes the same in
    two steps, its ZeroRule on the affine part and then ``R_i = x_i (s'_i - mean(s'))``, ``s' =
    R' / stab(x - mean(x))``, equal but for where the stabiliser sits."""

    layers = LAYER_NORMS


class ProductRule(Rule):
    """A product of two factors. On ``y = a * b`` (``Mul``) where one factor is a gate (a
    squeeze-and-excitation scale): ``split="signal"`` (default) gives the relevance to the other
    factor, the signal, and none to the gate, ``R_signal = R``, ``R_gate = 0``; ``split="uniform"``
    halves it, ``R_a = R / 2``, ``R_b = R / 2`` (AttnLRP's uniform rule), each summed over the axes
    its factor was broadcast along. ``gate`` is the gate's input position, 0 or 1 (default 1:
    ``x * g``, as torch writes a squeeze-and-excitation block); with ``split="signal"`` the signal
    must have the output's shape.

    On a matrix product ``y_ij = sum_k a_ik b_kj`` (``MatMul``), each term's share of ``R_ij`` by
    the epsilon rule, ``s = R / stab(y)``, is split the same way: ``"uniform"`` (AttnLRP's rule for
    an attention's ``q k^T`` and ``A v``, Achtibat et al. 2024, Eq. 7)::

        R_a = a * (s b^T) / 2,   R_b = b * (a^T s) / 2

    and ``"signal"``: the signal takes it all (``R_b = b * (a^T s)`` for ``gate=0``: CP-LRP's
    attention weights ``a = A``), the gate nothing. All conserve where no ``y`` is near 0:
    ``sum R_a + sum R_b = sum R``. ``epsilon`` is the matrix product's stabiliser (``"sign"``)."""

    layers = PRODUCTS + MATRIX_PRODUCTS

    def __init__(self, split: str = "signal", gate: int = 1, epsilon: float = 1e-6):
        if not isinstance(split, str) or split not in ("signal", "uniform"):
            raise ValueError(
                f"ProductRule: split must be 'signal' or 'uniform', got {shown(split)}"
            )
        if gate not in (0, 1) or isinstance(gate, bool):
            raise ValueError(
                f"ProductRule: gate must be 0 or 1 (the gate's input), got {shown(gate)}"
            )
        self.split, self.gate = split, gate
        self.epsilon = finite_number(epsilon, "ProductRule: epsilon", minimum=0)
        self.stabilizer = "sign"

    def _parameters(self) -> dict:
        return {"split": self.split, "gate": self.gate, "epsilon": self.epsilon}


class SoftmaxRule(Rule):
    """AttnLRP's softmax rule (Achtibat et al. 2024, Prop. 3.1): the first-order Taylor expansion
    of ``y = softmax(x)`` at ``x`` itself, its bias term absorbed::

        R_in_i = x_i (R_i - y_i sum_j R_j)        (along the softmax's dim)

    which is the input times the gradient of ``sum_j y_j (R_j / y_j)``. It does not conserve: the
    absorbed bias takes ``sum_j R_j - sum_i R_in_i = (sum_i x_i y_i) sum_j R_j + sum_j R_j -
    sum_i x_i R_i``. An input of ``-inf`` (a masked score) gets 0."""

    layers = SOFTMAXES


class _AttentionRule(Rule):
    """Common to the rules on ``MultiheadAttention``: the epsilon rule (``stabilizer="sign"``) on
    its four projections, ``R_x = x * (W^T (R_q / stab(q)))`` and the same for ``k``, ``v``,
    and on ``y = o W_o^T + b_o``."""

    layers = ATTENTION

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = finite_number(epsilon, f"{type(self).__name__}: epsilon", minimum=0)
        self.stabilizer = "sign"

    def _parameters(self) -> dict:
        return {"epsilon": self.epsilon}


class AttnLRPRule(_AttentionRule):
    """AttnLRP (Achtibat et al., ICML 2024) inside self-attention, per head: the epsilon rule on
    the projections; the uniform rule (:class:`ProductRule`'s) on ``o = A v``, so ``A`` and ``v``
    each take half of every term's relevance; the softmax rule (:class:`SoftmaxRule`) from ``A``
    to the scores; an additive mask's share absorbed as a bias (``R = s' R_s / stab(s)`` for the
    unmasked scores ``s'``); the uniform rule on ``s' = (q / sqrt(d)) k^T``. The same as LXT's
    efficient mode on ``torch.nn.MultiheadAttention`` (relevance x gradient with the gradient of
    ``q`` and ``k`` divided by 4, of ``v`` by 2) with ``epsilon`` to 0."""


class CPLRPRule(_AttentionRule):
    """CP-LRP (Ali et al., ICML 2022) inside self-attention: the attention weights ``A`` are held
    constant, so ``o = A v`` is linear in ``v`` and all of its relevance goes there, ``R_v = v *
    (A^T (R_o / stab(o)))``; ``q`` and ``k`` get none. Then the epsilon rule on the projections.
    LXT's ``cp_LRP`` for torchvision's ViT (``query`` and ``key`` detached) with ``epsilon``
    to 0."""


#: Every rule, in the order error messages name them (a layer's rules: :func:`rules_for`).
RULES: tuple[type[Rule], ...] = (
    NormRule, EpsilonRule, ZeroRule, GammaRule, GeneralizedGammaRule, WSquareRule, FlatRule,
    ZPlusRule, AlphaBetaRule, ZBoxRule, GradientRule, AveragePoolRule, LayerNormRule, PassRule,
    ProductRule, SoftmaxRule, AttnLRPRule, CPLRPRule,
)  # fmt: skip


def rules_for(layer: Layer) -> list[str]:
    """The names of the rules of :data:`RULES` that ``layer`` takes."""
    return [rule.__name__ for rule in RULES if rule.supports(layer)]
