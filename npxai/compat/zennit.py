"""Zennit's LRP presets and canonizers, reproduced.

Written against Zennit 0.5.1 (the newest release on PyPI; the issues speak of "Zennit 1.0") and
checked against it number by number in float64 by ``tests/test_lrp_zennit.py``, on a VGG-style
network with batch norm and on torchvision ResNets (BasicBlock and Bottleneck).

``lrp(model, composite)`` is what Zennit computes with
``Gradient(model, composite(..., canonizers=[ResNetCanonizer()]))`` (or ``VGGCanonizer``,
``SequentialMergeBatchNorm``: they fold alike) and a one-hot ``attr_output`` at the target:

    analyzer = npxai.compat.zennit.lrp(model, npxai.compat.zennit.EpsilonGammaBox(-3.0, 3.0))
    explanation = analyzer(x, target=[1, 3])

How Zennit differs from npxai's defaults, rule by rule and layer by layer:

- Batch-norm folding. :func:`merge_batch_norms` folds like ``npxai.canonize`` (``W' = s W``,
  ``b' = s (b - mean) + beta``; a convolution without bias gets one) but, as Zennit's ``MergeBatchNorm``, keeps
  each folded batch norm with ``running_mean = 0``, ``running_var = 1``, ``weight = 1``, ``bias =
  0`` and its ``eps``: it computes ``x / sqrt(1 + eps)``, so Zennit's canonized model is not the
  original (``npxai.canonize`` replaces the batch norm by ``Identity`` and is exact; ``python -m
  pytest -s tests/test_lrp_zennit.py -k folding`` prints the shift). A batch norm is folded when it
  comes right after a Linear or Conv2d in the model's leaf order (registration order, as Zennit's
  ``SequentialMergeBatchNorm`` walks it), not only inside one ``Sequential``.
- Residual sums. Zennit's ``ResNetCanonizer`` turns ``out + identity`` into a ``Sum`` module, which
  every preset gives ``Norm``; npxai's ``Residual`` has its ``Add`` layer, given ``NormRule`` here.
- Parameters. Zennit's ``epsilon`` is the epsilon of ``Epsilon`` on dense layers; its
  ``stabilizer`` (a float here; Zennit also takes a callable) is the epsilon of every other rule
  (``Gamma``, ``ZPlus``, ``AlphaBeta``, ``ZBox``, ``Flat``, ``Norm``), always with the sign
  stabiliser ``z + eps sgn0(z)``. npxai's ``stabilizer=`` argument names the kind of stabiliser,
  so Zennit's ``stabilizer`` becomes npxai's ``epsilon``.
- Dense and convolutional layers. Every preset here covers all of them (npxai's default for an
  unselected one is ``ZeroRule``). ``EpsilonGammaBox`` uses Zennit's sign-aware ``Gamma``, which is
  npxai's :class:`~npxai.lrp.rules.GeneralizedGammaRule` (so does npxai's own preset), and
  ``ZBox`` on the first convolution. The Flat presets put
  ``Flat`` on the first dense or convolutional layer, in registration order (npxai's
  ``FirstOfType``), as Zennit's first-layer map does.
- Average pooling (adaptive too) and residual sums: ``Norm(stabilizer)``, npxai's
  ``NormRule(epsilon=stabilizer)`` (npxai's default ``NormRule()`` has Zennit's default epsilon).
- Activations and batch norm: ``Pass`` in every preset but ``ExcitationBackprop``, as npxai's
  defaults. Max pooling, flatten, dropout, identity: Zennit hooks nothing, so they take the
  gradient (for max pooling npxai's default ``GradientRule``; for the others the gradient passes
  the relevance unchanged, ``PassRule``).
- ``ExcitationBackprop`` maps only dense and convolutional layers (z+), sums and average pools
  (Norm): Zennit's batch norms and activations then take the gradient (``GradientRule`` here);
  for a folded batch norm that is the factor ``1 / sqrt(1 + eps)``.
- A layer no preset maps (a trailing ``Softmax``) takes the gradient in Zennit; npxai stops with
  an error naming it (remove it with ``npxai.strip_softmax``).
- Output relevance: Zennit takes ``attr_output`` as given; :func:`lrp` starts from the one-hot
  vector at the target (npxai's ``output_relevance="one"``).
"""

from __future__ import annotations

import copy

import numpy as np

from .. import layers as L
from ..analyzers import LRP
from ..lrp.canonize import fold_batch_norm
from ..lrp.composites import ByType, Composite, FirstOfType
from ..lrp.kinds import ACTIVATIONS, BATCH_NORMS, PARAMETRIC, PASS_THROUGH
from ..lrp.rules import (
    AlphaBetaRule,
    EpsilonRule,
    FlatRule,
    GeneralizedGammaRule,
    GradientRule,
    NormRule,
    PassRule,
    ZBoxRule,
    ZPlusRule,
)
from ..module import Layer, Module


def _reset(norm: L.BatchNorm1d | L.BatchNorm2d) -> None:
    """What Zennit's ``MergeBatchNorm`` leaves of a folded batch norm: ``x / sqrt(1 + eps)``."""
    norm.running_mean = np.zeros_like(norm.running_mean)
    norm.running_var = np.ones_like(norm.running_var)
    if norm.weight is not None:
        norm.weight = np.ones_like(norm.weight)
    if norm.bias is not None:
        norm.bias = np.zeros_like(norm.bias)


def merge_batch_norms(model: Module) -> Module:
    """A copy of ``model`` canonized as Zennit's ``SequentialMergeBatchNorm`` (and so its
    ``VGGCanonizer`` and the folding part of its ``ResNetCanonizer``) does it: every batch norm that
    comes right after a Linear or Conv2d among the model's leaf layers, in registration order, is
    folded into it (``npxai.canonize.fold_batch_norm``) and then left in place with ``running_mean
    = 0``, ``running_var = 1``, ``weight = 1``, ``bias = 0`` and its ``eps``, computing ``x /
    sqrt(1 + eps)``. The residual sum needs no rewrite: npxai's ``Residual`` has its ``Add``."""
    model = copy.deepcopy(model)
    leaves = [m for _, m in model.named_modules() if isinstance(m, Layer)]
    for before, after in zip(leaves, leaves[1:], strict=False):
        if isinstance(before, PARAMETRIC) and isinstance(after, BATCH_NORMS):
            fold_batch_norm(before, after)
            _reset(after)
    return model


def layer_map_base(stabilizer: float = 1e-6) -> list:
    """Zennit's ``layer_map_base`` (the rules of every preset for the layers without parameters),
    and the gradient of the layers it leaves unhooked, as composite entries."""
    return [
        (ByType(*ACTIVATIONS), PassRule()),
        (ByType(L.Add, L.AvgPool2d, L.AdaptiveAvgPool2d), NormRule(stabilizer)),
        (ByType(*BATCH_NORMS), PassRule()),
        (ByType(L.MaxPool2d), GradientRule()),
        (ByType(*PASS_THROUGH), PassRule()),
    ]


def EpsilonGammaBox(  # noqa: N802  (presets read like classes, as Zennit's)
    low: float | np.ndarray,
    high: float | np.ndarray,
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    stabilizer: float = 1e-6,
) -> Composite:
    """Zennit's ``EpsilonGammaBox``: ZBox(low, high) on the first convolution, Zennit's Gamma
    (:class:`~npxai.lrp.rules.GeneralizedGammaRule`) on the other convolutions, Epsilon on dense
    layers. ``low`` and ``high`` are scalars or arrays that broadcast to the input."""
    return Composite(
        *layer_map_base(stabilizer),
        (ByType(L.Conv2d), GeneralizedGammaRule(gamma, epsilon=stabilizer)),
        (ByType(L.Linear), EpsilonRule(epsilon)),
        (FirstOfType(L.Conv2d), ZBoxRule(low, high, epsilon=stabilizer)),
        name="zennit.EpsilonGammaBox",
    )


def EpsilonPlus(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """Zennit's ``EpsilonPlus``: z+ on convolutions, Epsilon on dense layers."""
    return Composite(
        *layer_map_base(stabilizer),
        (ByType(L.Conv2d), ZPlusRule(epsilon=stabilizer)),
        (ByType(L.Linear), EpsilonRule(epsilon)),
        name="zennit.EpsilonPlus",
    )


def EpsilonPlusFlat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """Zennit's ``EpsilonPlusFlat``: EpsilonPlus, and Flat on the first dense or convolutional
    layer."""
    return Composite(
        *EpsilonPlus(epsilon, stabilizer).entries,
        (FirstOfType(L.Conv2d, L.Linear), FlatRule(epsilon=stabilizer)),
        name="zennit.EpsilonPlusFlat",
    )


def EpsilonAlpha2Beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """Zennit's ``EpsilonAlpha2Beta1``: alpha=2 beta=1 on convolutions, Epsilon on dense layers."""
    return Composite(
        *layer_map_base(stabilizer),
        (ByType(L.Conv2d), AlphaBetaRule(2.0, 1.0, epsilon=stabilizer)),
        (ByType(L.Linear), EpsilonRule(epsilon)),
        name="zennit.EpsilonAlpha2Beta1",
    )


def EpsilonAlpha2Beta1Flat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """Zennit's ``EpsilonAlpha2Beta1Flat``: EpsilonAlpha2Beta1, and Flat on the first dense or
    convolutional layer."""
    return Composite(
        *EpsilonAlpha2Beta1(epsilon, stabilizer).entries,
        (FirstOfType(L.Conv2d, L.Linear), FlatRule(epsilon=stabilizer)),
        name="zennit.EpsilonAlpha2Beta1Flat",
    )


def ExcitationBackprop(stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """Zennit's ``ExcitationBackprop``: z+ on every dense and convolutional layer, Norm on sums and
    average pools, the gradient elsewhere (activations and batch norms included)."""
    return Composite(
        (ByType(*PASS_THROUGH), PassRule()),
        (ByType(*ACTIVATIONS, *BATCH_NORMS, L.MaxPool2d), GradientRule()),
        (ByType(L.Add, L.AvgPool2d, L.AdaptiveAvgPool2d), NormRule(stabilizer)),
        (ByType(L.Linear, L.Conv2d), ZPlusRule(epsilon=stabilizer)),
        name="zennit.ExcitationBackprop",
    )


def lrp(model: Module, composite: Composite, backend: str | None = None) -> LRP:
    """An LRP analyzer computing what Zennit computes with ``composite``'s preset, its canonizers
    (``SequentialMergeBatchNorm``, ``VGGCanonizer`` or ``ResNetCanonizer``) and a one-hot
    ``attr_output`` at the target: ``model`` is canonized by :func:`merge_batch_norms` (a copy;
    ``model`` is unchanged), so pass it uncanonized: folding twice would divide by ``sqrt(1 + eps)`` twice."""
    return LRP(
        merge_batch_norms(model), composite, output_relevance="one", backend=backend, canonize=False
    )
