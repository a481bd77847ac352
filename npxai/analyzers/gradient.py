"""Gradient and InputTimesGradient."""

from __future__ import annotations

from typing import Any

import numpy as np

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

    def attribute(
        self, inputs: Any, target: Target = None, abs: bool = False, **captum_args: Any
    ) -> np.ndarray:
        """Captum's ``Saliency(model).attribute(inputs, target, abs=...)``: the gradient, its
        absolute value with ``abs=True`` (Captum's default; npxai's is the signed gradient)."""
        grad = super().attribute(inputs, target, **captum_args)
        return np.abs(grad) if abs else grad


class InputTimesGradient(Analyzer):
    """``R(x) = x * d f_t(x) / d x`` (element-wise)."""

    heatmap_preset = "attribution"

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        trace, indices, grad = self.backprop(x, target)
        return self.explanation(multiply(trace.input, grad), trace, indices)
