"""What every analyzer shares: the model, the backend, and one backward pass from a target."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backend import resolve
from ..device import deliver
from ..explanation import Explanation
from ..gradient import gradient, output_seed, resolve_target
from ..module import Module, Step, Trace, vjp_step

Target = int | Sequence[int] | np.ndarray | None


class Analyzer(ABC):
    """An explanation method bound to a model; ``analyzer(x, target)`` explains a batch."""

    #: The heatmap preset that suits the method.
    heatmap_preset = "sensitivity"

    def __init__(self, model: Module, backend: str | None = None):
        if not isinstance(model, Module):
            raise TypeError(f"an analyzer needs an npxai Module, got {type(model).__name__}")
        self.model = model
        self.backend = None if backend is None else resolve(backend)

    @abstractmethod
    def __call__(self, x: Any, target: Target = None) -> Explanation:
        """Explain the batch ``x`` for ``target`` (default: each sample's arg-max output)."""

    def backprop(
        self,
        x: Any,
        target: Target,
        make_step: Callable[[str], Step] = vjp_step,
        scale_by_output: bool = False,
    ) -> tuple[Trace, np.ndarray, np.ndarray]:
        """Forward pass, then the one-hot signal at ``output[n, target[n]]`` (times that output's
        value if ``scale_by_output``) walked back with the step that ``make_step(backend)``
        builds (plain backpropagation by default). Returns ``(trace, target indices, signal at
        the input)``."""
        trace = self.model.trace(x, self.backend)
        indices = resolve_target(trace.output, target)
        seed = output_seed(trace.output, indices, scale_by_output)
        signal = self.model.backward(trace, seed, make_step(trace.backend))
        return trace, indices, signal

    def explanation(
        self, attribution: np.ndarray, trace: Trace, indices: np.ndarray, **extras: Any
    ) -> Explanation:
        """The result; its arrays are NumPy unless the input was a device array (the cuda
        backend then leaves ``attribution``, ``output`` and ``input`` on the device)."""
        return Explanation(
            deliver(attribution, trace.device_input),
            deliver(trace.output, trace.device_input),
            indices,
            type(self).__name__,
            self.heatmap_preset,
            extras,
            deliver(trace.input, trace.device_input),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, backend={self.backend!r})"


def gradients_in_batches(
    model: Module, points: np.ndarray, targets: np.ndarray, batch_size: int, backend: str
) -> np.ndarray:
    """``npxai.gradient`` of many inputs (noisy copies, path points), ``batch_size`` at a time."""
    return np.concatenate([
        gradient(model, points[i : i + batch_size], targets[i : i + batch_size], backend)
        for i in range(0, len(points), batch_size)
    ])  # fmt: skip


def analyze(x: Any, analyzer: Analyzer, target: Target = None) -> Explanation:
    """``analyzer(x, target)``, in the form ExplainableAI.jl users know."""
    return analyzer(x, target)
