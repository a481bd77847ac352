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
- the output relevance is the selected logit (``output_relevance="logit"``), not 1;
- Captum's other rules: ``GammaRule(gamma)`` adds ``gamma W+`` to the weight and keeps the bias as
  it is (npxai's ``GammaRule(gamma, bias=False)``); ``Alpha1_Beta0_Rule`` clamps the weights
  (``W+``) and neither splits the input by sign nor drops the bias (:class:`Alpha1Beta0Rule`;
  npxai's and Zennit's z+ split the input, ``W+ x+ + W- x-`` with ``b+``); both stabilise with
  ``STABILITY_FACTOR = 1e-9`` (``captum/attr/_utils/lrp_rules.py``);
- a bare ``a + b`` in the forward passes its gradient, the full relevance, to both summands (npxai's
  ``GradientRule`` on ``Add``), and ``torch.cat`` and ``flatten`` pass theirs back (Captum hooks
  modules only).
"""

from __future__ import annotations

from .. import layers as L
from ..analyzers import LRP
from ..checks import flag
from ..composites import ByType, Composite
from ..module import Module
from ..rules import EpsilonRule, Group, LinearRule, Term, identity, positive

#: Captum's default rule map.
COMPOSITE = Composite(
    (
        ByType(L.Linear, L.Conv2d, L.MaxPool2d, L.AvgPool2d, L.AdaptiveAvgPool2d, L.BatchNorm2d),
        EpsilonRule(1e-9),
    ),
    name="captum",
)


class Alpha1Beta0Rule(LinearRule):
    """Captum's ``Alpha1_Beta0_Rule``: ``z = W+ x + b`` (``set_bias_to_zero=True``: ``z = W+ x``),
    ``R_in = x * (W+^T (R_out / stab(z)))``; the input is not split by sign, so a negative input
    takes negative relevance."""

    def __init__(self, bias: bool = True, epsilon: float = 1e-9, stabilizer: str = "sign"):
        super().__init__(epsilon, stabilizer)
        self.bias = flag(bias, "Alpha1Beta0Rule: bias")

    def groups(self) -> list[Group]:
        return [Group([Term(identity, positive, identity if self.bias else None)])]

    def _parameters(self) -> dict:
        return {"bias": self.bias, **super()._parameters()}


def lrp(model: Module, backend: str | None = None) -> LRP:
    """An LRP analyzer that computes what ``captum.attr.LRP(model).attribute(x, target)`` does."""
    return LRP(model, COMPOSITE, output_relevance="logit", backend=backend, canonize=False)
