"""Captum's ``captum.attr.LRP`` (0.9) with its default rules.

How Captum differs from npxai's defaults:

- every supported layer (Linear, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d)
  gets the epsilon rule with ``epsilon = 1e-9`` and the sign stabiliser (``sgn0(0) = +1``); there
  are no presets and no first-layer rules;
- max pooling takes the epsilon rule through its gradient: the winner of a window gets
  ``x_max R / (y + eps sgn0(y))``, i.e. ``R`` up to the stabiliser, and nothing when the maximum is 0
  (npxai's default, the gradient, passes ``R``);
- batch norm is not folded: the epsilon rule runs on it as the affine map ``s x + t``;
- ReLU, Dropout and Tanh pass relevance through; any other layer type makes Captum raise;
- the output relevance is the selected logit (``output_relevance="logit"``), not 1.
"""

from __future__ import annotations

from .. import layers as L
from ..analyzers import LRP
from ..composites import ByType, Composite
from ..module import Module
from ..rules import EpsilonRule

#: Captum's default rule map.
COMPOSITE = Composite(
    (
        ByType(L.Linear, L.Conv2d, L.MaxPool2d, L.AvgPool2d, L.AdaptiveAvgPool2d, L.BatchNorm2d),
        EpsilonRule(1e-9),
    ),
    name="captum",
)


def lrp(model: Module, backend: str | None = None) -> LRP:
    """An LRP analyzer that computes what ``captum.attr.LRP(model).attribute(x, target)`` does."""
    return LRP(model, COMPOSITE, output_relevance="logit", backend=backend, canonize=False)
