"""Guided Backpropagation (Springenberg et al. 2015) and DeconvNet (Zeiler and Fergus 2014).

Both are backpropagation with another rule at every ``ReLU`` layer (other activations, like
Captum's, keep their gradient):

- Guided Backpropagation: ``R_in = [x > 0] * max(R_out, 0)`` (the gradient's mask, and only
  positive signals pass);
- DeconvNet: ``R_in = max(R_out, 0)`` (the forward pass's mask is ignored).

Max pooling routes the signal to the recorded maxima (the "switches"), as its gradient does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import backend_modules
from ..explanation import Explanation
from ..layers import ReLU
from ..module import Record, Step, vjp_step
from .base import Analyzer, Target


def _relu_rule_step(backend: str, use_mask: bool) -> Step:
    ops, backprop = backend_modules(backend).activation, vjp_step(backend)

    def step(record: Record, signal: np.ndarray) -> np.ndarray:
        if not isinstance(record.layer, ReLU):
            return backprop(record, signal)
        positive = ops.relu(signal)
        return ops.relu_vjp(positive, record.input) if use_mask else positive

    return step


class GuidedBackprop(Analyzer):
    """Backpropagation where each ReLU passes ``[x > 0] * max(R_out, 0)``."""

    heatmap_preset = "sensitivity"

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        trace, indices, signal = self.backprop(x, target, lambda b: _relu_rule_step(b, True))
        return self.explanation(signal, trace, indices)


class DeconvNet(Analyzer):
    """Backpropagation where each ReLU passes ``max(R_out, 0)``."""

    heatmap_preset = "sensitivity"

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        trace, indices, signal = self.backprop(x, target, lambda b: _relu_rule_step(b, False))
        return self.explanation(signal, trace, indices)
