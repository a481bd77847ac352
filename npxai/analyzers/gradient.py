"""Gradient and InputTimesGradient."""

from __future__ import annotations

from typing import Any

from ..device import multiply
from ..explanation import Explanation
from .base import Analyzer, Target


class Gradient(Analyzer):
    """``R(x) = d f_t(x) / d x``: the signed gradient of the selected output ``f_t`` (no absolute
    value, unlike Captum's Saliency default)."""

    heatmap_preset = "sensitivity"

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        trace, indices, grad = self.backprop(x, target)
        return self.explanation(grad, trace, indices)


class InputTimesGradient(Analyzer):
    """``R(x) = x * d f_t(x) / d x`` (element-wise)."""

    heatmap_preset = "attribution"

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        trace, indices, grad = self.backprop(x, target)
        return self.explanation(multiply(trace.input, grad), trace, indices)
