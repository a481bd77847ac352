"""``npxai.gradient``: the input gradient of one selected output per sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import resolve
from .device import deliver, is_device, to_host
from .module import Module, vjp_step


def resolve_target(
    output: np.ndarray, target: int | Sequence[int] | np.ndarray | None
) -> np.ndarray:
    """Per-sample output indices: ``None`` -> each sample's arg-max, an int -> that index for
    every sample, a sequence -> one index per sample. ``output`` must be ``(N, K)`` (a device
    array is read on the host)."""
    output = to_host(output)
    if output.ndim != 2:
        raise ValueError(
            f"the model's output must have shape (N, K) to select a target, got {output.shape}"
        )
    n, k = output.shape
    if target is None:
        return output.argmax(axis=1)
    indices = np.asarray(target)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"target must be None, an int or a sequence of ints, got {target!r}")
    if indices.ndim == 0:
        indices = np.full(n, int(indices))
    elif indices.shape != (n,):
        raise ValueError(f"target must give one index per sample ({n}), got shape {indices.shape}")
    bad = (indices < 0) | (indices >= k)
    if bad.any():
        raise ValueError(f"target {indices[bad][0]} is out of range for an output of {k} classes")
    return indices.astype(np.int64)


def output_seed(
    output: np.ndarray, indices: np.ndarray, scale_by_output: bool = False
) -> np.ndarray:
    """The signal that starts a backward pass: ``1`` (or, with ``scale_by_output``, the output's
    own value) at ``output[n, indices[n]]``, zero elsewhere; made on the host, and sent to the
    device if ``output`` is there."""
    host = to_host(output)
    seed = np.zeros_like(host)
    rows = np.arange(len(indices))
    seed[rows, indices] = host[rows, indices] if scale_by_output else 1
    return deliver(seed, is_device(output))


def gradient(
    model: Module,
    x: Any,
    target: int | Sequence[int] | np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """``d output[n, target[n]] / d x[n]`` for every sample ``n`` of the batch ``x``.

    The output is the model's last layer (logits, unless the model ends in a softmax). ``target``
    defaults to each sample's arg-max output (see :func:`resolve_target`). The result has the
    shape and dtype of ``x``. ``backend`` defaults to :func:`npxai.get_backend`; on the cuda
    backend the result is NumPy unless ``x`` is a device array.
    """
    backend = resolve(backend)
    # only the gradient is returned: on the host, the trace keeps only what backpropagation reads
    trace = model.trace(x, backend, vjp_only=backend != "cuda")
    indices = resolve_target(trace.output, target)
    grad = model.backward(trace, output_seed(trace.output, indices), vjp_step(trace.backend))
    return deliver(grad, trace.device_input)
