"""What every analyzer shares: the model, the backend, and one backward pass from a target."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..backend import backend_or_default
from ..device import deliver
from ..explanation import Explanation
from ..gradient import gradient, output_seed, target_indices
from ..lrp.canonize import folded
from ..module import Module, Step, Trace, check_input, vjp_step
from ..progress import Progress

#: An int, a sequence of ints (one per sample), an ImageNet class name or names, per-class weights
#: ``(K,)`` or ``(N, K)`` (a one-hot row is its index), or ``None`` (see ``target_indices``).
Target = int | str | Sequence[int] | Sequence[str] | np.ndarray | None


def as_model(model: Any) -> Module:
    """``model`` itself if it is an npxai ``Module``; a ``torch.nn.Module`` converted with
    :func:`npxai.from_torch` (a torch module exists only once torch is imported, so torch is
    never imported here for an npxai model); anything else is a ``TypeError``."""
    if isinstance(model, Module):
        return model
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        from ..convert import from_torch

        return from_torch(model)
    raise TypeError(
        "an analyzer needs an npxai Module (or a torch.nn.Module, which it converts with "
        f"npxai.from_torch), got {type(model).__name__}"
    )


def to_numpy(value: Any) -> Any:
    """A torch tensor as a NumPy array (detached, on the host); anything else unchanged."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def reject(owner: str, captum_args: dict[str, Any]) -> None:
    """A ``TypeError`` naming the Captum arguments that ``owner.attribute`` does not take."""
    if captum_args:
        raise TypeError(
            f"{owner}.attribute got argument(s) it does not support: {', '.join(captum_args)} "
            "(npxai models take one input and return one attribution)"
        )


class Analyzer(ABC):
    """An explanation method bound to a model; ``analyzer(x, target)`` explains a batch."""

    #: The heatmap preset that suits the method.
    heatmap_preset = "sensitivity"

    def __init__(self, model: Module, backend: str | None = None):
        self.model = as_model(model)
        self.backend = None if backend is None else backend_or_default(backend)

    @abstractmethod
    def __call__(self, x: Any, target: Target = None) -> Explanation:
        """Explain the batch ``x`` for ``target`` (default: each sample's arg-max output)."""

    def attribute(self, inputs: Any, target: Target = None, **captum_args: Any) -> np.ndarray:
        """Captum's call: ``self(inputs, target).attribution``. ``inputs`` and ``target`` may be
        torch tensors (read on the host); the result is a NumPy array (a device array on the cuda
        backend for a device input). Analyzers with a Captum counterpart take its arguments where
        they mean the same; any other argument is a ``TypeError`` naming it."""
        reject(type(self).__name__, captum_args)
        return self(to_numpy(inputs), to_numpy(target)).attribution

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
        the input)``. Plain backpropagation on the numba backend runs through the model with its
        batch norms folded (:func:`npxai.lrp.canonize.folded`), as :func:`npxai.gradient` does."""
        model = self.model
        if make_step is vjp_step and backend_or_default(self.backend) == "numba":
            x = check_input(x, backend="numba")  # checked here for its dtype; nothing is copied
            model = folded(model, x.dtype)
        trace = model.trace(x, self.backend)
        indices = target_indices(trace.output, target)
        seed = output_seed(trace.output, indices, scale_by_output)
        signal = model.backward(trace, seed, make_step(trace.backend))
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


def repeat_targets(targets: np.ndarray, n: int) -> np.ndarray:
    """``targets`` (indices ``(N,)`` or weights ``(N, K)``) repeated ``n`` times along the first
    axis: row ``r`` gets sample ``r % N``'s target."""
    return np.tile(targets, (n,) + (1,) * (targets.ndim - 1))


def gradients_in_batches(
    model: Module,
    make_points: Callable[[np.ndarray], np.ndarray],
    targets: np.ndarray,
    batch_size: int,
    backend: str,
    progress: Progress,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``npxai.gradient`` of many inputs (noisy copies, path points), ``batch_size`` rows at a
    time, in order: yields ``(rows, gradients)``, the inputs of ``rows`` made by
    ``make_points(rows)`` only when their batch runs (so they are never all in memory);
    ``targets[r]`` is row ``r``'s target. ``progress`` counts the batches."""
    try:
        for done, start in enumerate(range(0, len(targets), batch_size), 1):
            rows = np.arange(start, min(start + batch_size, len(targets)))
            yield rows, gradient(model, make_points(rows), targets[rows], backend)
            progress.update(done)
    finally:
        progress.close()


def analyze(x: Any, analyzer: Analyzer, target: Target = None) -> Explanation:
    """``analyzer(x, target)``, in the form ExplainableAI.jl users know."""
    return analyzer(x, target)
