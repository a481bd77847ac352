"""What every metric shares: the call ``metric(model, x, attribution, target, ...)``, the model
as a function ``x -> scores (N, K)``, the attribution checked against the input, and the explained
output of many (perturbed) inputs, evaluated ``batch_size`` rows per model call.

- ``model``: an npxai model (run on ``backend``), a ``torch.nn.Module`` (converted with
  :func:`npxai.from_torch`) or any callable ``f(x) -> scores (N, K)``;
- ``x``: the batch ``(N, *sample)``, float32 or float64;
- ``attribution``: an array ``(N, *a)`` whose sample shape ``a`` broadcasts to ``sample`` (a
  channel-summed map ``(N, 1, H, W)`` of an image ``(N, C, H, W)``), a torch tensor, an
  :class:`~npxai.Explanation`, or an explainer (an analyzer, or any callable ``explain(x, target)``
  returning one of these) that is run on ``x`` for the targets. Grad-CAM's explanation gives its
  input-resolution map (``extras["upsampled"]``). The attribution's entries are the *features* a
  perturbation metric orders: perturbing feature ``j`` changes every entry of ``x`` that it
  broadcasts to (all channels of a pixel for a channel-summed map);
- ``batch_size``: the rows (inputs) of one model call; ``None`` (the default) takes as many as
  hold about :data:`BATCH_ENTRIES` input entries (8 images of 3 x 224 x 224), at most
  :data:`MAX_BATCH_SIZE`: larger batches of large inputs are slower per row, for npxai's models
  and torch's alike (``python benchmarks/bench_metrics.py --batch-size 64``);
- ``target``: what each sample explains, as for an analyzer (``None``: the arg-max output; see
  :func:`npxai.gradient.target_indices`); an explained output is the target's score
  ``f(x)_t`` (with ``softmax=True``: ``softmax(f(x))_t``), or ``sum_k w_k f(x)_k`` for per-class
  weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analyzers.base import Target, to_numpy
from ..analyzers.perturbation import explained_rows, forward_function
from ..backend import backend_or_default
from ..checks import flag, positive_int, shown
from ..explanation import Explanation
from ..gradient import target_indices
from ..module import check_input

#: The input entries that one model call of a metric holds when ``batch_size`` is ``None``.
BATCH_ENTRIES = 8 * 3 * 224 * 224
#: The most rows of one model call when ``batch_size`` is ``None``.
MAX_BATCH_SIZE = 64

#: An attribution as a metric takes it (see :mod:`npxai.metrics.base`).
Attribution = np.ndarray | Explanation | Callable[..., Any]


def rows_per_call(batch_size: int | None, x: np.ndarray, owner: str) -> int:
    """``batch_size`` checked, or for ``None`` the rows of :data:`BATCH_ENTRIES` entries of
    ``x``'s samples (at least 1, at most :data:`MAX_BATCH_SIZE`)."""
    if batch_size is None:
        return max(1, min(MAX_BATCH_SIZE, BATCH_ENTRIES // max(1, x[0].size)))
    return positive_int(batch_size, f"{owner}: batch_size")


def softmax(scores: np.ndarray) -> np.ndarray:
    """``exp(s_k - max s) / sum_j exp(s_j - max s)`` along the last axis, in float64."""
    shifted = np.asarray(scores, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def fits_per_sample(array: np.ndarray, reference: np.ndarray) -> bool:
    """Whether ``array`` has one entry per sample of ``reference`` and each of its sample axes is
    ``reference``'s or 1 (so that it broadcasts to ``reference``)."""
    if array.ndim != reference.ndim or len(array) != len(reference):
        return False
    return all(a in (1, r) for a, r in zip(array.shape[1:], reference.shape[1:], strict=True))


def attribution_array(value: Any, x: np.ndarray, owner: str) -> np.ndarray:
    """``value`` (an array, a torch tensor or an :class:`Explanation`) as a float64 array ``(N,
    *a)`` whose sample shape broadcasts to ``x``'s, else ``ValueError`` naming ``attribution``."""
    if isinstance(value, Explanation):
        value = value.extras.get("upsampled", value.attribution)
    array = np.asarray(to_numpy(value))
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: attribution must be a numeric array, got {array.dtype}")
    if not fits_per_sample(array, x):
        raise ValueError(
            f"{owner}: attribution of shape {array.shape} does not fit the input {x.shape}: give "
            f"one map per sample, ({len(x)}, {', '.join(map(str, x.shape[1:]))}), or one whose "
            "sample axes are the input's or 1 (a channel-summed map)"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{owner}: attribution has NaN or infinite entries")
    return array.astype(np.float64)


def explain(explainer: Any, x: np.ndarray, target: np.ndarray, owner: str) -> np.ndarray:
    """The attribution of ``x`` for ``target``: ``explainer`` itself if it is one, else the result
    of calling it (an analyzer, or ``explain(x, target)``), checked by :func:`attribution_array`."""
    if callable(explainer):
        explainer = explainer(x, target)
    return attribution_array(explainer, x, owner)


@dataclass
class Inputs:
    """One metric call's checked arguments: ``forward`` the model as ``x -> scores (N, K)``,
    ``x`` the batch, ``output`` its scores, ``target`` indices ``(N,)`` or weights ``(N, K)``,
    ``attribution`` float64 ``(N, *a)`` (``None`` until asked for), ``batch_size`` the rows
    of one model call, ``softmax`` whether explained outputs are probabilities."""

    forward: Callable[[np.ndarray], np.ndarray]
    x: np.ndarray
    output: np.ndarray
    target: np.ndarray
    attribution: np.ndarray | None
    batch_size: int
    softmax: bool
    owner: str

    def explained(self, scores: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """The explained output (float64) of each row of ``scores``, row ``r`` an input made
        from sample ``samples[r]``."""
        if self.softmax:
            scores = softmax(scores)
        return explained_rows(np.asarray(scores, np.float64), self.target, samples)

    @property
    def full(self) -> np.ndarray:
        """The explained output of each sample of ``x`` itself, ``(N,)``."""
        return self.explained(self.output, np.arange(len(self.x)))

    def evaluate(
        self, make_rows: Callable[[np.ndarray], np.ndarray], samples: np.ndarray
    ) -> np.ndarray:
        """The explained outputs ``(R,)`` of ``R = len(samples)`` inputs, ``batch_size`` rows
        per model call: ``make_rows(rows)`` builds the inputs of row numbers ``rows`` (shape
        ``(len(rows), *sample)``) only when their batch runs, row ``r`` made from sample
        ``samples[r]``."""
        values = np.empty(len(samples))
        for start in range(0, len(samples), self.batch_size):
            rows = np.arange(start, min(start + self.batch_size, len(samples)))
            inputs = make_rows(rows).astype(self.x.dtype, copy=False)
            values[rows] = self.explained(self.forward(inputs), samples[rows])
        return values


def prepare(
    owner: str,
    model: Any,
    x: Any,
    attribution: Any,
    target: Target,
    batch_size: int | None = None,
    softmax: bool = False,
    backend: str | None = None,
    needs_attribution: bool = True,
) -> Inputs:
    """Check a metric's common arguments (``owner`` names the metric in errors), run the model
    on ``x`` once and resolve the targets and the attribution (an explainer runs here, once)."""
    softmax = flag(softmax, f"{owner}: softmax")
    backend = None if backend is None else backend_or_default(backend)
    forward = forward_function(model, backend)
    x = check_input(to_numpy(x))
    batch_size = rows_per_call(batch_size, x, owner)
    output = np.asarray(to_numpy(forward(x)))
    if output.ndim != 2 or len(output) != len(x):
        raise ValueError(
            f"{owner}: the model must return scores of shape (N, K) = ({len(x)}, K), got "
            f"{output.shape}"
        )
    indices = target_indices(output, to_numpy(target))
    array = explain(attribution, x, indices, owner) if needs_attribution else None
    return Inputs(forward, x, output, indices, array, batch_size, softmax, owner)


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {shown(value)}"
        )
    return value


def attribution_only(
    owner: str, model: Any, x: Any, attribution: Any, target: Target, backend: str | None = None
) -> np.ndarray:
    """The checked attribution (float64 ``(N, *a)``) of a metric whose value depends on the
    attribution alone: with ``model=None`` the model is not run (``attribution`` must then be an
    array, a tensor or an :class:`Explanation`, checked against ``x``); with a model, as
    :func:`prepare` (the model runs once on ``x``, an explainer once for the targets)."""
    if model is not None:
        return prepare(owner, model, x, attribution, target, backend=backend).attribution
    if callable(attribution):
        raise TypeError(
            f"{owner}: an explainer as attribution needs the model; with model=None give the "
            "attribution itself (an array, a tensor or an Explanation)"
        )
    return attribution_array(attribution, check_input(to_numpy(x)), owner)
