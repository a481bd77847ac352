"""``npxai.gradient``: the input gradient of one selected output per sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import backend_or_default
from .device import deliver, is_device, to_host
from .lrp.canonize import folded
from .module import Module, check_input, vjp_step


def target_indices(output: np.ndarray, target: Any) -> np.ndarray:
    """What each sample explains: indices ``(N,)`` into the output, or weights ``(N, K)``.

    - ``None``: each sample's arg-max output;
    - an int: that index for every sample; a sequence of ints: one index per sample;
    - a class name (``str``) or one per sample, for a model with 1000 outputs: its index in
      :data:`npxai.imagenet.CLASS_NAMES` (ignoring case; an unknown name lists near matches, a
      name that two classes share lists their indices);
    - per-class weights ``w``, as Zennit's ``attr_output`` and torch's ``grad_outputs``: a float
      or bool array of shape ``(K,)`` (every sample) or any numeric array of shape ``(N, K)``.
      Rows that are one-hot become their index; otherwise the explained output is
      ``sum_k w[n, k] output[n, k]`` (the backward pass starts from ``w``, see
      :func:`output_seed`).

    ``output`` must be ``(N, K)`` (a device array is read on the host). Returns int64 indices when
    every row is one index, else float weights of ``output``'s dtype."""
    if isinstance(output, tuple):
        raise ValueError(
            f"the model has {len(output)} outputs; explain one of them (a Graph's "
            "with_output(name))"
        )
    output = to_host(output)
    if output.ndim != 2:
        raise ValueError(
            f"the model's output must have shape (N, K) to select a target, got {output.shape}"
        )
    n, k = output.shape
    if target is None:
        return output.argmax(axis=1)
    if isinstance(target, str) or (
        isinstance(target, Sequence) and target and all(isinstance(t, str) for t in target)
    ):
        target = class_indices(target, k)
    indices = np.asarray(target)
    if (
        indices.dtype.kind == "b"
        or (indices.dtype.kind in "iuf" and indices.ndim == 2)
        or (indices.dtype.kind == "f" and indices.ndim == 1)
    ):
        return _weights(indices, n, k, output.dtype)
    if indices.dtype.kind not in "iu":
        raise TypeError(
            "target must be None, an int or a sequence of ints (one per sample), ImageNet class "
            f"names, or per-class weights (K,) or (N, K), got {target!r}"
        )
    if indices.ndim == 0:
        indices = np.full(n, int(indices))
    elif indices.shape != (n,):
        raise ValueError(f"target must give one index per sample ({n}), got shape {indices.shape}")
    bad = (indices < 0) | (indices >= k)
    if bad.any():
        raise ValueError(f"target {indices[bad][0]} is out of range for an output of {k} classes")
    return indices.astype(np.int64)


def _weights(weights: np.ndarray, n: int, k: int, dtype: np.dtype) -> np.ndarray:
    """Per-class weights ``(K,)`` or ``(N, K)`` as indices where every row is one-hot, else as
    ``(N, K)`` weights."""
    if weights.shape not in ((k,), (n, k)):
        raise ValueError(
            f"a target of per-class weights must have shape ({k},) or ({n}, {k}) for this output, "
            f"got {weights.shape}; indices must be ints"
        )
    weights = np.broadcast_to(weights.astype(dtype), (n, k))
    if not np.isfinite(weights).all():
        raise ValueError("a target of per-class weights must be finite, got NaN or inf")
    if ((weights == 0) | (weights == 1)).all() and (weights.sum(axis=1) == 1).all():
        return weights.argmax(axis=1).astype(np.int64)
    return weights.copy()


def class_indices(names: str | Sequence[str], classes: int) -> int | list[int]:
    """ImageNet class names (:data:`npxai.imagenet.CLASS_NAMES`, ignoring case) as indices, for a
    model with ``classes == 1000`` outputs."""
    from difflib import get_close_matches

    from .imagenet import CLASS_NAMES

    if classes != len(CLASS_NAMES):
        raise ValueError(
            f"a class name as target needs a model with {len(CLASS_NAMES)} ImageNet outputs, "
            f"this one has {classes}; pass the class's index"
        )
    lowered = [name.lower() for name in CLASS_NAMES]

    def index(name: str) -> int:
        found = [i for i, known in enumerate(lowered) if known == name.lower()]
        if len(found) > 1:
            raise ValueError(
                f"target {name!r} names {len(found)} ImageNet classes (indices "
                f"{', '.join(map(str, found))}); pass the index"
            )
        if not found:
            near = get_close_matches(name.lower(), lowered, n=5, cutoff=0.6)
            hint = f"; near matches: {', '.join(repr(CLASS_NAMES[lowered.index(m)]) for m in near)}"
            raise ValueError(
                f"target {name!r} is not an ImageNet class name{hint if near else ''} "
                "(npxai.imagenet.CLASS_NAMES lists them)"
            )
        return found[0]

    return index(names) if isinstance(names, str) else [index(name) for name in names]


def output_seed(
    output: np.ndarray, indices: np.ndarray, scale_by_output: bool = False
) -> np.ndarray:
    """The signal that starts a backward pass: for indices ``(N,)``, ``1`` (or, with
    ``scale_by_output``, the output's own value) at ``output[n, indices[n]]``, zero elsewhere; for
    weights ``(N, K)`` (see :func:`target_indices`), the weights (times the output, with
    ``scale_by_output``). Made on the host, and sent to the device if ``output`` is there."""
    host = to_host(output)
    if indices.ndim == 2:
        seed = indices.astype(host.dtype) * (host if scale_by_output else 1)
        return deliver(seed, is_device(output))
    seed = np.zeros_like(host)
    rows = np.arange(len(indices))
    seed[rows, indices] = host[rows, indices] if scale_by_output else 1
    return deliver(seed, is_device(output))


def gradient(
    model: Module,
    x: Any,
    target: Any = None,
    backend: str | None = None,
) -> np.ndarray:
    """``d output[n, target[n]] / d x[n]`` for every sample ``n`` of the batch ``x`` (for
    per-class weights ``w``: ``d sum_k w[n, k] output[n, k] / d x[n]``).

    The output is the model's last layer (logits, unless the model ends in a softmax). ``target``
    defaults to each sample's arg-max output (see :func:`target_indices`). The result has the
    shape and dtype of ``x``. ``backend`` defaults to :func:`npxai.get_backend`; on the cuda
    backend the result is NumPy unless ``x`` is a device array. On the numba backend the batch
    norms that follow a convolution or linear layer are folded into it first
    (:func:`npxai.lrp.canonize.folded`: the same function, one pass less per batch norm each way).
    """
    backend = backend_or_default(backend)
    if backend == "numba":
        x = check_input(x, backend=backend)  # checked here for its dtype; nothing is copied
        model = folded(model, x.dtype)
    # only the gradient is returned: on the host, the trace keeps only what backpropagation reads
    trace = model.trace(x, backend, vjp_only=backend != "cuda")
    indices = target_indices(trace.output, target)
    grad = model.backward(trace, output_seed(trace.output, indices), vjp_step(trace.backend))
    return deliver(grad, trace.device_input)
