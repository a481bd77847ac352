"""Composites: which LRP rule runs on which layer, as data.

A composite is a list of ``(selector, rule)`` entries applied in order over the model's leaf
layers (in registration order, which is execution order for npxai's containers); a later entry
overrides an earlier one. Layers that no entry selects get :data:`DEFAULTS`: Linear and Conv2d
the ZeroRule (as RelevancePropagation.jl), max pooling the gradient (winner takes all),
concatenation the gradient (the exact split back into the inputs' slices), average pooling,
means, padding, upsampling and sums the NormRule, a gated product the ProductRule (relevance to
the signal), a matrix product AttnLRP's uniform ProductRule, self-attention the AttnLRPRule, layer
norm the LayerNormRule, batch norm (when not folded by ``canonize``), activations, dropout,
flatten, reshape, permute and identity the PassRule. A layer for which nothing applies
(``Softmax``: a composite must name its rule, as AttnLRP does, or a trailing one is stripped), or
a rule that cannot run on its layer, stops the analyzer's construction with an
:class:`~npxai.errors.LRPCompatibilityError` naming it.

The presets are functions returning a composite; :data:`PRESETS` lists them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import layers as L
from ..checks import positive_int, shown
from ..errors import LRPCompatibilityError
from ..module import Layer, Module, keys_within
from . import kinds
from .rules import (
    AlphaBetaRule,
    AttnLRPRule,
    CPLRPRule,
    EpsilonRule,
    FlatRule,
    GeneralizedGammaRule,
    GradientRule,
    LayerNormRule,
    NormRule,
    PassRule,
    ProductRule,
    Rule,
    SoftmaxRule,
    ZBoxRule,
    ZeroRule,
    ZPlusRule,
    rules_for,
)

LayerList = list[tuple[str, Layer]]

#: The rule a layer of each kind gets when no composite entry selects it.
DEFAULTS: tuple[tuple[tuple[type, ...], Rule], ...] = (
    (kinds.PARAMETRIC, ZeroRule()),
    (kinds.MAX_POOLS + kinds.CONCATENATIONS, GradientRule()),
    (kinds.AVERAGE_POOLS + kinds.MEANS + kinds.RESAMPLING + kinds.SUMS, NormRule()),
    (kinds.SHAPE_PRESERVING, PassRule()),
    (kinds.PRODUCTS, ProductRule()),
    (kinds.MATRIX_PRODUCTS, ProductRule("uniform")),
    (kinds.LAYER_NORMS, LayerNormRule()),
    (kinds.ATTENTION, AttnLRPRule()),
)

__all__ = [
    "DEFAULTS",
    "default_rule",
    "ByType",
    "FirstOfType",
    "LastOfType",
    "FirstN",
    "IndexRange",
    "Keys",
    "Composite",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "EpsilonAlpha2Beta1",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
    "ExcitationBackprop",
    "AttnLRP",
    "CPLRP",
    "PRESETS",
]


def default_rule(layer: Layer) -> Rule | None:
    """The rule of :data:`DEFAULTS` for ``layer``'s kind, ``None`` for a layer LRP cannot take."""
    return next((rule for types, rule in DEFAULTS if isinstance(layer, types)), None)


def _incompatible(key: str, layer: Layer, rule: Rule | None) -> LRPCompatibilityError:
    """The error for a layer without a rule, or with one it cannot run."""
    kind, takes = type(layer).__name__, rules_for(layer)
    if rule is None:
        message = (
            f"LRP: no rule covers layer {key!r} ({kind}); supported layers: "
            f"{', '.join(t.__name__ for t in kinds.SUPPORTED)} (remove a trailing Softmax with "
            "npxai.strip_softmax)"
        )
    else:
        message = f"LRP: {rule!r} cannot run on layer {key!r} ({kind}); it takes {', '.join(takes)}"
    return LRPCompatibilityError(message, key, kind, rule, takes)


def _layer_types(types: tuple, owner: str) -> tuple[type, ...]:
    """``types`` if it is one or more classes, else a ``TypeError`` naming ``owner``."""
    if not types or not all(isinstance(t, type) for t in types):
        bad = next((t for t in types if not isinstance(t, type)), None)
        raise TypeError(
            f"{owner}: give one or more layer types (classes such as npxai.layers.Conv2d)"
            + (f", got {shown(bad)}" if types else "")
        )
    return types


@dataclass(frozen=True)
class ByType:
    """Every layer of the given types."""

    types: tuple[type, ...]

    def __init__(self, *types: type):
        object.__setattr__(self, "types", _layer_types(types, type(self).__name__))

    def select(self, leaves: LayerList) -> list[str]:
        return [key for key, layer in leaves if isinstance(layer, self.types)]

    def __repr__(self) -> str:
        return f"ByType({', '.join(t.__name__ for t in self.types)})"


class FirstOfType(ByType):
    """The first layer of the given types."""

    def select(self, leaves: LayerList) -> list[str]:
        return super().select(leaves)[:1]

    def __repr__(self) -> str:
        return "FirstOf" + super().__repr__()[2:]


class LastOfType(ByType):
    """The last layer of the given types."""

    def select(self, leaves: LayerList) -> list[str]:
        return super().select(leaves)[-1:]

    def __repr__(self) -> str:
        return "LastOf" + super().__repr__()[2:]


@dataclass(frozen=True)
class FirstN:
    """The first ``n`` layers of the given types."""

    n: int
    types: tuple[type, ...]

    def __init__(self, n: int, *types: type):
        object.__setattr__(self, "n", positive_int(n, "FirstN: n"))
        object.__setattr__(self, "types", _layer_types(types, "FirstN"))

    def select(self, leaves: LayerList) -> list[str]:
        return ByType(*self.types).select(leaves)[: self.n]

    def __repr__(self) -> str:
        return f"FirstN({self.n}, {', '.join(t.__name__ for t in self.types)})"


@dataclass(frozen=True)
class IndexRange:
    """Leaf layers ``start <= index < stop`` in the model's order (any type; Python's slice
    ``leaves[start:stop]``, so negative ints count from the end)."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        for name in ("start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"IndexRange: {name} must be an int, got {shown(value)}")

    def select(self, leaves: LayerList) -> list[str]:
        return [key for key, _ in leaves[self.start : self.stop]]


@dataclass(frozen=True)
class Keys:
    """Layers by key; a container's key selects every leaf inside it."""

    keys: tuple[str, ...]

    def __init__(self, *keys: str):
        if not keys or not all(isinstance(k, str) and k for k in keys):
            bad = next((k for k in keys if not (isinstance(k, str) and k)), None)
            raise TypeError(
                "Keys: give one or more layer keys (non-empty strings, as model.named_modules() "
                "names them)" + (f", got {shown(bad)}" if keys else "")
            )
        object.__setattr__(self, "keys", keys)

    def __repr__(self) -> str:
        return f"Keys({', '.join(map(repr, self.keys))})"

    def select(self, leaves: LayerList) -> list[str]:
        names = [key for key, _ in leaves]
        chosen = set()
        for k in self.keys:
            if not (inside := keys_within(k, names)):
                raise ValueError(f"Keys: the model has no layer {k!r}")
            chosen.update(inside)
        return [n for n in names if n in chosen]


class Composite:
    """An ordered list of ``(selector, rule)`` entries; see the module docstring."""

    def __init__(self, *entries: tuple[object, Rule], name: str | None = None):
        for i, entry in enumerate(entries):
            ok = isinstance(entry, tuple | list) and len(entry) == 2
            if not ok or not callable(getattr(entry[0], "select", None)):
                raise TypeError(
                    f"Composite: entry {i} must be a pair (selector, rule) whose selector has a "
                    f"select method (ByType, FirstOfType, Keys, ...), got {shown(entry)}"
                )
            if not isinstance(entry[1], Rule):
                raise TypeError(
                    f"Composite: entry {i}'s rule must be an npxai.rules rule, got {shown(entry[1])}"
                )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Composite: name must be a str or None, got {shown(name)}")
        self.entries = list(entries)
        self.name = name or "Composite"

    def __add__(self, entries: list[tuple[object, Rule]]) -> Composite:
        """A new composite with ``entries`` appended (they override this one's)."""
        return Composite(*self.entries, *entries, name=self.name + "+")

    def assign(self, model: Module) -> dict[str, Rule]:
        """``{leaf key: rule}`` for the model, checked: every layer gets a rule it can run."""
        leaves = [(key, m) for key, m in model.named_modules() if isinstance(m, Layer)]
        rules = {key: default_rule(layer) for key, layer in leaves}
        for selector, rule in self.entries:
            for key in selector.select(leaves):
                rules[key] = rule
        for key, layer in leaves:
            rule = rules[key]
            if rule is None or not rule.supports(layer):
                raise _incompatible(key, layer, rule)
        return rules

    def __repr__(self) -> str:
        lines = "\n".join(f"  {selector!r}: {rule!r}" for selector, rule in self.entries)
        return f"{self.name}(\n{lines}\n)"


def EpsilonPlus(epsilon: float = 1e-6) -> Composite:  # noqa: N802  (presets read like classes)
    """Epsilon on dense layers, z+ on convolutions."""
    return Composite(
        (ByType(L.Linear), EpsilonRule(epsilon)),
        (ByType(L.Conv2d), ZPlusRule()),
        name="EpsilonPlus",
    )


def EpsilonPlusFlat(epsilon: float = 1e-6) -> Composite:  # noqa: N802
    """EpsilonPlus, and Flat on the first convolution or dense layer."""
    return Composite(
        *EpsilonPlus(epsilon).entries,
        (FirstOfType(L.Conv2d, L.Linear), FlatRule()),
        name="EpsilonPlusFlat",
    )


def EpsilonAlpha2Beta1(epsilon: float = 1e-6) -> Composite:  # noqa: N802
    """Epsilon on dense layers, alpha=2 beta=1 on convolutions."""
    return Composite(
        (ByType(L.Linear), EpsilonRule(epsilon)),
        (ByType(L.Conv2d), AlphaBetaRule(2.0, 1.0)),
        name="EpsilonAlpha2Beta1",
    )


def EpsilonAlpha2Beta1Flat(epsilon: float = 1e-6) -> Composite:  # noqa: N802
    """EpsilonAlpha2Beta1, and Flat on the first convolution or dense layer."""
    return Composite(
        *EpsilonAlpha2Beta1(epsilon).entries,
        (FirstOfType(L.Conv2d, L.Linear), FlatRule()),
        name="EpsilonAlpha2Beta1Flat",
    )


def EpsilonGammaBox(
    low: float, high: float, epsilon: float = 1e-6, gamma: float = 0.25
) -> Composite:  # noqa: N802
    """Epsilon on dense layers, the sign-aware gamma (:class:`~npxai.lrp.rules.GeneralizedGammaRule`,
    Zennit's) on convolutions, ZBox(low, high) on the first convolution. The plain
    :class:`~npxai.lrp.rules.GammaRule` (RelevancePropagation.jl's, ``npxai.compat.julia``) is the same
    on a ReLU network's non-negative inputs where ``z > 0``; where a convolution's inputs have both
    signs (EfficientNet's blocks end without a ReLU) its denominator ``z + gamma sum w+ x`` can
    pass through zero (tests/test_efficientnet.py: on EfficientNet-Lite0 the input relevance
    explodes with it)."""
    return Composite(
        (ByType(L.Linear), EpsilonRule(epsilon)),
        (ByType(L.Conv2d), GeneralizedGammaRule(gamma)),
        (FirstOfType(L.Conv2d), ZBoxRule(low, high)),
        name="EpsilonGammaBox",
    )


def ExcitationBackprop() -> Composite:  # noqa: N802
    """z+ on every dense and convolutional layer (Zennit's ExcitationBackprop; sums and average
    pools keep their NormRule default)."""
    return Composite((ByType(L.Linear, L.Conv2d), ZPlusRule()), name="ExcitationBackprop")


def AttnLRP(epsilon: float = 1e-6) -> Composite:  # noqa: N802
    """AttnLRP (Achtibat et al., ICML 2024) for transformers: the epsilon rule on dense layers,
    convolutions (a ViT's patch embedding) and sums (the residual connections, the positional
    embedding); :class:`~npxai.lrp.rules.AttnLRPRule` in self-attention (the uniform rule on its
    bilinear products, the softmax rule); :class:`~npxai.lrp.rules.LayerNormRule` (the variance
    held constant); the identity rule on element-wise non-linearities (GELU, SiLU: their
    PassRule default); on an attention written out as layers (an ONNX import), the softmax rule
    on ``Softmax`` and the uniform rule on ``MatMul``."""
    return Composite(
        (ByType(L.Linear, L.Conv2d), EpsilonRule(epsilon)),
        (ByType(L.Add), NormRule(epsilon)),
        (ByType(*kinds.LAYER_NORMS), LayerNormRule(epsilon)),
        (ByType(*kinds.ATTENTION), AttnLRPRule(epsilon)),
        (ByType(*kinds.SOFTMAXES), SoftmaxRule()),
        (ByType(*kinds.MATRIX_PRODUCTS), ProductRule("uniform", epsilon=epsilon)),
        name="AttnLRP",
    )


def CPLRP(epsilon: float = 1e-6) -> Composite:  # noqa: N802
    """CP-LRP (Ali et al., ICML 2022): AttnLRP with the attention weights held constant in
    self-attention (:class:`~npxai.lrp.rules.CPLRPRule`: relevance flows through the values
    only). On an attention written out as layers, add ``(Keys(...), ProductRule("signal",
    gate=0))`` for its ``A @ v`` ``MatMul`` layers: the scores then receive nothing (each
    ``MatMul`` is told apart only by its key)."""
    entries = [e if e[0] != ByType(*kinds.ATTENTION) else (e[0], CPLRPRule(epsilon))
               for e in AttnLRP(epsilon).entries]  # fmt: skip
    return Composite(*entries, name="CPLRP")


#: Every preset, by name, in the order the catalogue lists them (``npxai.methods``).
PRESETS: dict[str, Callable[..., Composite]] = {
    preset.__name__: preset
    for preset in (EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat,
                   EpsilonGammaBox, ExcitationBackprop, AttnLRP, CPLRP)
}  # fmt: skip
