"""RelevancePropagation.jl's (v3, the Flux/Zygote version) LRP rules and presets, reproduced.

There is no Julia here: the conventions below were read in the package's source,
``github.com/Julia-XAI/RelevancePropagation.jl``, and ``tests/test_lrp_julia.py`` checks them
against its formulas written out on dense matrices in float64 (rule by rule on Linear and Conv2d
layers, and layer by layer on a small network for every preset, both backends). Files read:

- ``src/rules.jl``: the generic ``lrp!`` (``s = R ./ modify_denominator(rule, z)``, ``R_in = a~ .*
  pullback(s)``), ``modify_input`` / ``modify_weight`` / ``modify_bias`` / ``modify_layer`` of
  every rule, the specialised ``lrp!`` of ``PassRule``, ``ZBoxRule``, ``AlphaBetaRule``,
  ``ZPlusRule`` and ``GeneralizedGammaRule``, the fast paths (``ZeroRule``/``EpsilonRule`` pass
  relevance through dropout and ``flatten``; ``FlatRule`` on ``Dense``) and the constants
  ``LRP_DEFAULT_EPSILON = 1.0f-6``, ``LRP_DEFAULT_STABILIZER = 1.0f-9``, ``LRP_DEFAULT_GAMMA =
  0.25f0``, ``LRP_DEFAULT_ALPHA = 2.0f0``, ``LRP_DEFAULT_BETA = 1.0f0``;
- ``src/utils.jl``: ``stabilize_denom``, ``keep_positive``, ``keep_negative``, ``masked_copy``;
- ``src/composite.jl``: ``lrp_rules`` (later primitives override earlier ones, a layer that none
  matches gets ``ZeroRule()``, ``FirstLayerTypeMap`` looks only at the model's first layer);
- ``src/composite_presets.jl``: ``EpsilonGammaBox``, ``EpsilonPlus``, ``EpsilonAlpha2Beta1``,
  ``EpsilonPlusFlat``, ``EpsilonAlpha2Beta1Flat``;
- ``src/lrp.jl``: ``LRP(model) = LRP(model, Composite(ZeroRule()))``, the output relevance
  (``mask_output_neuron!``) and the relevance split of ``Parallel`` and ``SkipConnection``;
- ``src/layer_types.jl`` (``ConvLayer``, ``DropoutLayer``, ``ReshapingLayer``, ``PoolingLayer``,
  ``NormalizationLayer``, the supported activations), ``src/layer_utils.jl`` (``copy_layer``
  rebuilds a layer with the ``identity`` activation), ``src/checks.jl`` (``check_lrp_compat``),
  ``src/canonize.jl`` (``canonize_fuse``);
- ``CHANGELOG.md``: v3.0.0 moved to XAIBase 4 and added ``normalize_output_relevance``; the rules
  and presets are v2's; v4.0.0 rewrote the package for Lux.

How RelevancePropagation.jl differs from npxai's defaults, rule by rule and layer by layer:

- Stabiliser. ``stabilize_denom(d, eps)`` is ``eps`` where ``d == 0`` and ``d + sign(d) eps``
  elsewhere: npxai's ``"sign"`` stabiliser, ``z + eps sgn0(z)`` with ``sgn0(0) = +1``.
- Epsilons. ``EpsilonRule`` defaults to ``1.0f-6`` and every other rule stabilises with ``1.0f-9``;
  both are Float32 literals that Julia widens to the input's type, so in float64 they are
  :data:`EPSILON` ``= float(np.float32(1e-6))`` and :data:`STABILIZER` ``=
  float(np.float32(1e-9))`` (npxai: ``1e-6`` for every rule).
- ``ZeroRule`` is stabilised too (with :data:`STABILIZER`; npxai's ``ZeroRule`` is not): here it is
  ``EpsilonRule(STABILIZER)``.
- ``GammaRule(gamma)``: ``W + gamma W+`` and ``b + gamma b+``, npxai's ``GammaRule(bias=True)``
  (not Zennit's sign-aware gamma); ``GeneralizedGammaRule`` is npxai's.
- ``WSquareRule``: ``W^2`` and no bias (npxai's ``bias=False``).
- ``FlatRule``: on a convolution, all-ones input and weights, no bias (padding not counted), as
  npxai's; on ``Dense`` a fast path gives every input ``sum(R) / n_in`` exactly, without
  stabiliser: ``FlatRule(dense=True)`` here.
- ``ZPlusRule``: ``(a+, W+, b+) + (a-, W-, 0)`` over one denominator, npxai's
  ``ZPlusRule(bias="positive")``; ``AlphaBetaRule``: ``b+`` in the alpha denominator, ``b-`` in the
  beta one, ``alpha - beta = 1`` enforced, npxai's; ``ZBoxRule``: ``z - z+ - z-`` with each term's
  own bias (``b``, ``b+``, ``b-``), so the bias cancels, npxai's. No default bounds.
- Pooling (max, mean, adaptive): no preset names it, so it takes ``ZeroRule``, the generic step
  through the layer's pullback: max pooling gives the window's maximum ``x R / stab(y)`` (npxai: the
  gradient, ``R``), average pooling the z-rule (npxai: ``NormRule``), both with :data:`STABILIZER`.
- Batch norm (not folded): ``PassRule`` in the presets; under ``LRP(model)`` ``ZeroRule`` on its
  affine map (Flux's ``BatchNorm`` has no ``weight`` field, so ``modify_layer`` keeps it whole).
  npxai assumes Flux's test mode (running statistics). Julia's ``canonize`` (not reproduced)
  folds with ``gamma / sqrt(var)``, leaving out the batch norm's ``eps``; ``npxai.canonize`` keeps
  it.
- Dropout, ``flatten``, ``identity``: ``PassRule`` in the presets, and a fast path that passes the
  relevance under ``ZeroRule`` for dropout and ``flatten`` (``identity`` under ``LRP(model)``
  would take ``ZeroRule``, ``R a / stab(a)``; npxai's ``Identity`` passes it).
- Activations. In Flux an activation lives inside its ``Dense``/``Conv``/``BatchNorm``
  (``Dense(in, out, relu)``) and the rules rebuild the layer without it (``copy_layer``), so
  relevance passes the activation: npxai's separate ``ReLU`` layers get ``PassRule``. Two rules
  evaluate the unmodified layer, activation included: ``ZBoxRule`` (its ``z`` and pullback) and
  ``GeneralizedGammaRule`` (the sign mask); npxai evaluates the layer without the ReLU after it.
  The two agree wherever the relevance reaching a neuron that the ReLU sets to 0 is 0, which holds
  when the next rule multiplies by its input (every preset, as ``tests/test_lrp_julia.py`` checks
  for ``EpsilonGammaBox`` with Julia's form written out). The same holds for ``ZeroRule`` on a
  batch norm with a fused ReLU under ``LRP(model)``. Julia's model check accepts only ReLU-like
  activations (``relu``, ``gelu``, ``swish``, ``mish``): :func:`lrp` accepts ``ReLU``, ``GELU``
  and ``SiLU`` (swish) and rejects ``ReLU6``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``Hardsigmoid``,
  ``Hardswish`` and ``Hardtanh`` unless ``skip_checks=True``.
- Residual sums. ``SkipConnection`` and ``Parallel`` split ``R`` in proportion to each branch's
  output over ``stabilize_denom(sum)`` with :data:`STABILIZER`, whatever the composite: npxai's
  ``Add`` gets ``EpsilonRule(STABILIZER)`` here (npxai: ``NormRule()``).
- First-layer rules. ``FirstLayerTypeMap(ConvLayer => rule)`` applies only when the model's first
  layer (its first leaf) is a convolution, and the Flat presets put Flat on that convolution only,
  never on a dense layer; npxai's presets take the first ``Conv2d`` (``ZBoxRule``) or the first
  ``Conv2d``/``Linear`` (``FlatRule``) wherever it is. Selector: :class:`FirstLayer`.
- Unmatched layers get ``ZeroRule`` (npxai: its ``DEFAULTS``); :func:`Default` is ``LRP(model)``'s
  composite, ``ZeroRule`` everywhere.
- Output relevance: 1 at the selected output (``normalize_output_relevance=true``, npxai's
  ``output_relevance="one"``), else the output's value (``"logit"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import layers as L
from ..analyzers import LRP
from ..lrp import rules as R
from ..lrp.composites import ByType, Composite
from ..lrp.kinds import (
    ACTIVATIONS,
    AVERAGE_POOLS,
    BATCH_NORMS,
    MAX_POOLS,
    PARAMETRIC,
    PASS_THROUGH,
    SUMS,
)  # fmt: skip
from ..module import Layer, Module

#: ``LRP_DEFAULT_EPSILON = 1.0f-6`` widened to float64: ``EpsilonRule``'s default.
EPSILON = float(np.float32(1e-6))
#: ``LRP_DEFAULT_STABILIZER = 1.0f-9`` widened to float64: every other rule's epsilon.
STABILIZER = float(np.float32(1e-9))
#: ``LRP_DEFAULT_GAMMA = 0.25f0``.
GAMMA = 0.25

#: Activations Julia's ``check_lrp_compat`` accepts (``LRPSupportedActivation``) and the others.
SUPPORTED_ACTIVATIONS = (L.ReLU, L.GELU, L.SiLU)  # relu, gelu, swish (mish: no npxai layer)
UNSUPPORTED_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a not in SUPPORTED_ACTIVATIONS)


def ZeroRule() -> R.EpsilonRule:  # noqa: N802  (Julia's rule names)
    """``R_in = a * (W^T (R / stab(W a + b)))``, stabilised with :data:`STABILIZER`."""
    return R.EpsilonRule(STABILIZER)


def EpsilonRule(epsilon: float = EPSILON) -> R.EpsilonRule:  # noqa: N802
    """``R_in = a * (W^T (R / stab(W a + b)))`` with ``stab(z) = z + epsilon sgn0(z)``."""
    return R.EpsilonRule(epsilon)


def GammaRule(gamma: float = GAMMA) -> R.GammaRule:  # noqa: N802
    """The z-rule on ``W + gamma W+`` and ``b + gamma b+``, stabilised with :data:`STABILIZER`."""
    return R.GammaRule(gamma, bias=True, epsilon=STABILIZER)


def GeneralizedGammaRule(gamma: float = GAMMA) -> R.GeneralizedGammaRule:  # noqa: N802
    """npxai's sign-aware gamma (see :class:`npxai.lrp.rules.GeneralizedGammaRule`), stabilised with
    :data:`STABILIZER`."""
    return R.GeneralizedGammaRule(gamma, epsilon=STABILIZER)


def WSquareRule() -> R.WSquareRule:  # noqa: N802
    """``R_in = W^2^T (R / stab(W^2 1))``: no bias, stabilised with :data:`STABILIZER`."""
    return R.WSquareRule(bias=False, epsilon=STABILIZER)


def FlatRule(dense: bool = False) -> R.FlatRule:  # noqa: N802
    """``R_in = 1^T (R / stab(n))``, ``n`` the inputs each output covers, with :data:`STABILIZER`
    on a convolution; ``dense=True`` (for a ``Linear``): ``R_in = sum(R) / n_in``, unstabilised."""
    return R.FlatRule(epsilon=0.0 if dense else STABILIZER)


def ZPlusRule() -> R.ZPlusRule:  # noqa: N802
    """``z = W+ a+ + b+ + W- a-``, ``R_in = a+ (W+^T s) + a- (W-^T s)``, ``s = R / stab(z)``."""
    return R.ZPlusRule(bias="positive", epsilon=STABILIZER)


def AlphaBetaRule(alpha: float = 2.0, beta: float = 1.0) -> R.AlphaBetaRule:  # noqa: N802
    """``alpha`` times z+ (with ``b+``) minus ``beta`` times the negative contributions ``W- a+ +
    W+ a-`` (with ``b-``), each over its own denominator; ``alpha - beta = 1``."""
    return R.AlphaBetaRule(alpha, beta, epsilon=STABILIZER)


def ZBoxRule(low: float | np.ndarray, high: float | np.ndarray) -> R.ZBoxRule:  # noqa: N802
    """``z = W a - W+ l - W- h`` (the bias cancels), ``R_in = a (W^T s) - l (W+^T s) - h (W-^T
    s)``, ``s = R / stab(z)`` with :data:`STABILIZER`."""
    return R.ZBoxRule(low, high, epsilon=STABILIZER)


def PassRule() -> R.PassRule:  # noqa: N802
    """``R_in = R_out`` (reshaped)."""
    return R.PassRule()


@dataclass(frozen=True)
class FirstLayer:
    """The model's first leaf, if it is one of ``types`` (Julia's ``FirstLayerTypeMap``)."""

    types: tuple[type, ...]

    def __init__(self, *types: type):
        object.__setattr__(self, "types", types)

    def select(self, leaves: list[tuple[str, Layer]]) -> list[str]:
        return [leaves[0][0]] if leaves and isinstance(leaves[0][1], self.types) else []

    def __repr__(self) -> str:
        return f"FirstLayer({', '.join(t.__name__ for t in self.types)})"


_POOLS = MAX_POOLS + AVERAGE_POOLS
_PASSED = BATCH_NORMS + PASS_THROUGH


def unparametrised() -> list:
    """The presets' rules for the layers without parameters, as composite entries: what a
    ``GlobalTypeMap`` leaves unmatched takes ``ZeroRule`` (pooling), the fused activations,
    dropout, flatten and unfolded batch norms pass, the residual split is stabilised."""
    return [
        (ByType(*_POOLS), ZeroRule()),
        (ByType(*_PASSED, *ACTIVATIONS), PassRule()),
        (ByType(L.Add), ZeroRule()),
    ]


def _preset(name: str, dense: R.Rule, conv: R.Rule, *first: tuple[object, R.Rule]) -> Composite:
    """A preset's ``GlobalTypeMap`` and :func:`unparametrised`, then its ``FirstLayerTypeMap``."""
    return Composite(
        (ByType(L.Linear), dense), (ByType(L.Conv2d), conv), *unparametrised(), *first, name=name
    )


def Default() -> Composite:  # noqa: N802
    """``LRP(model)``'s ``Composite(ZeroRule())``: ZeroRule on dense and convolutional layers,
    pooling, unfolded batch norm and residual sums; dropout, flatten, identity and the (fused)
    activations pass the relevance."""
    return Composite(
        (ByType(*PARAMETRIC, *_POOLS, *BATCH_NORMS, *SUMS), ZeroRule()),
        (ByType(*PASS_THROUGH, *ACTIVATIONS), PassRule()),
        name="LRP(model)",
    )


def EpsilonGammaBox(  # noqa: N802
    low: float | np.ndarray,
    high: float | np.ndarray,
    epsilon: float = EPSILON,
    gamma: float = GAMMA,
) -> Composite:
    """Epsilon on dense layers, Gamma on convolutions, ZBox(low, high) on the first layer if it is
    a convolution."""
    return _preset(
        "EpsilonGammaBox",
        EpsilonRule(epsilon),
        GammaRule(gamma),
        (FirstLayer(L.Conv2d), ZBoxRule(low, high)),
    )


def EpsilonPlus(epsilon: float = EPSILON) -> Composite:  # noqa: N802
    """Epsilon on dense layers, z+ on convolutions."""
    return _preset("EpsilonPlus", EpsilonRule(epsilon), ZPlusRule())


def EpsilonAlpha2Beta1(epsilon: float = EPSILON) -> Composite:  # noqa: N802
    """Epsilon on dense layers, alpha=2 beta=1 on convolutions."""
    return _preset("EpsilonAlpha2Beta1", EpsilonRule(epsilon), AlphaBetaRule(2.0, 1.0))


def EpsilonPlusFlat(epsilon: float = EPSILON) -> Composite:  # noqa: N802
    """EpsilonPlus, and Flat on the first layer if it is a convolution."""
    return _preset(
        "EpsilonPlusFlat", EpsilonRule(epsilon), ZPlusRule(), (FirstLayer(L.Conv2d), FlatRule())
    )


def EpsilonAlpha2Beta1Flat(epsilon: float = EPSILON) -> Composite:  # noqa: N802
    """EpsilonAlpha2Beta1, and Flat on the first layer if it is a convolution."""
    return _preset(
        "EpsilonAlpha2Beta1Flat",
        EpsilonRule(epsilon),
        AlphaBetaRule(2.0, 1.0),
        (FirstLayer(L.Conv2d), FlatRule()),
    )


def lrp(
    model: Module,
    composite: Composite | None = None,
    backend: str | None = None,
    normalize_output_relevance: bool = True,
    skip_checks: bool = False,
    record: bool = False,
) -> LRP:
    """An LRP analyzer computing what RelevancePropagation.jl's ``LRP(model, composite)`` does
    (``composite=None``: ``LRP(model)``, :func:`Default`). The output relevance is 1 at the target
    (``normalize_output_relevance=True``, Julia's default) or the target's output value. As Julia's
    ``check_lrp_compat``, activations other than ReLU raise ``ValueError`` unless ``skip_checks``.
    """
    if not skip_checks:
        for key, layer in model.named_modules():
            if isinstance(layer, UNSUPPORTED_ACTIVATIONS):
                raise ValueError(
                    f"RelevancePropagation.jl's model check rejects layer {key!r} "
                    f"({type(layer).__name__}): only ReLU-like activations are supported; pass "
                    "skip_checks=True to go on"
                )
    return LRP(
        model,
        composite or Default(),
        output_relevance="one" if normalize_output_relevance else "logit",
        record=record,
        backend=backend,
        canonize=False,
    )
