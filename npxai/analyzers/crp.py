"""Concept Relevance Propagation (Achtibat et al., Nature Machine Intelligence 2023).

CRP explains a prediction once per *concept*, a channel of an intermediate layer: the LRP
relevance arriving at that layer's output is masked to the concept's channel, and the backward
pass continues from there with the same rules. For a layer ``L`` with output relevance ``R_L``
(``(N, C, ...)``, channel axis 1; a dense layer's channels are its output units)::

    R_L      = LRP_{output -> L}(seed)                  (the relevance arriving at L's output)
    R_c[n]   = sum_{positions p} R_L[n, c, p]           (a channel's relevance, signed)
    R^(c)_in = LRP_{L -> input}([channel = c] * R_L)    (the concept-conditional relevance)

Every LRP step is linear in the relevance it receives, so ``sum_c R^(c)_in`` is the relevance
that LRP passes through ``L`` (all of it, for a chain of layers: then it equals the plain LRP
attribution). Relevance that reaches the input without passing through ``L`` (a residual
shortcut beside it) belongs to no concept and is left out, as zennit-crp's
``exclude_parallel=True`` (its default) leaves it out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backend import BackendError, backend_or_default
from ..checks import flag, positive_int
from ..explanation import Explanation
from ..gradient import output_seed, target_indices
from ..lrp import step as lrp_step
from ..module import Record, Signal, Trace, leaf_key
from ..progress import Progress, check_progress
from .base import Analyzer, Target
from .lrp import LRP


class Features(ABC):
    """Which channels of the conditioned layer are the concepts, per sample."""

    @abstractmethod
    def select(self, channel_relevance: np.ndarray, layer: str) -> np.ndarray:
        """``(N, k)`` channel indices from the channels' relevance ``R_c`` ``(N, C)`` at layer
        ``layer`` (named in error messages)."""

    @abstractmethod
    def check(self, channels: int, layer: str) -> None:
        """Raise ``ValueError`` (naming ``layer``) if the selection cannot fit ``channels``."""


class TopNFeatures(Features):
    """The ``n`` channels with the largest relevance ``R_c = sum_p R_L[n, c, p]`` per sample, in
    descending order: the signed sum (as zennit-crp ranks concepts: ``argsort`` of its
    ``ChannelConcept.attribute``, descending), or ``|R_c|`` with ``absolute=True``. Ties go to
    the lower channel index (a stable sort of ``-R_c``)."""

    def __init__(self, n: int, absolute: bool = False):
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"TopNFeatures: n must be a positive int, got {n!r}")
        self.n, self.absolute = int(n), flag(absolute, "TopNFeatures: absolute")

    def check(self, channels: int, layer: str) -> None:
        if self.n > channels:
            raise ValueError(
                f"CRP: TopNFeatures(n={self.n}) asks for more channels than layer {layer!r} has "
                f"({channels}); expected 1 <= n <= {channels}"
            )

    def select(self, channel_relevance: np.ndarray, layer: str) -> np.ndarray:
        self.check(channel_relevance.shape[1], layer)
        score = np.abs(channel_relevance) if self.absolute else channel_relevance
        return np.argsort(-score, axis=1, kind="stable")[:, : self.n]

    def __repr__(self) -> str:
        return f"TopNFeatures({self.n}{', absolute=True' if self.absolute else ''})"


class IndexedFeatures(Features):
    """The given channels, in the given order, for every sample: ``IndexedFeatures(3, 0, 7)``
    (or ``IndexedFeatures([3, 0, 7])``)."""

    def __init__(self, *indices: int | Iterable[int]):
        if len(indices) == 1 and isinstance(indices[0], Iterable):
            indices = tuple(indices[0])
        bad = [
            i
            for i in indices
            if isinstance(i, bool) or not isinstance(i, int | np.integer) or i < 0
        ]
        if not indices or bad:
            raise ValueError(
                "IndexedFeatures: give one or more channel indices (ints >= 0)"
                + (f", got {bad[0]!r}" if bad else "")
            )
        self.indices = tuple(int(i) for i in indices)

    def check(self, channels: int, layer: str) -> None:
        for i in self.indices:
            if i >= channels:
                raise ValueError(
                    f"CRP: channel {i} is out of range for layer {layer!r}, which has {channels} "
                    f"channels; expected 0 <= index < {channels}"
                )

    def select(self, channel_relevance: np.ndarray, layer: str) -> np.ndarray:
        self.check(channel_relevance.shape[1], layer)
        return np.tile(np.array(self.indices, dtype=np.int64), (len(channel_relevance), 1))

    def __repr__(self) -> str:
        return f"IndexedFeatures({', '.join(map(str, self.indices))})"


class CRP(Analyzer):
    """Concept Relevance Propagation on top of an :class:`~npxai.analyzers.lrp.LRP` analyzer (its
    model, rules, output relevance and backend): for each concept, channel ``c`` of layer ``L``,
    ``R^(c)_in = LRP_{L -> input}([channel = c] * R_L)``, ``R_L`` the LRP relevance arriving at
    ``L``'s output (see :mod:`npxai.analyzers.crp`).

    ``channel_axis`` is the axis of ``L``'s output that holds its channels: 1 (default: a
    convolution's ``(N, C, H, W)``, a dense layer's ``(N, F)``) or -1 for a transformer's token
    features ``(N, S, F)`` (a neuron of an MLP layer: the same unit of every token).

    ``layer`` is a key of ``model.named_modules()`` (a container means its last leaf's output)
    or an int indexing the model's leaf layers in order (negative from the end), as in the LRP
    analyzer's table. ``features`` selects the concepts: :class:`TopNFeatures` or
    :class:`IndexedFeatures`. ``batch_size`` bounds how many (sample, concept) rows one backward
    pass below the layer carries (``None``: all of them); with more than one pass, ``progress``
    shows a progress bar on standard error when it is a terminal
    (:class:`npxai.progress.Progress`).

    ``crp(x, target)`` returns an :class:`~npxai.Explanation` whose ``attribution`` has shape
    ``(N, k, *x.shape[1:])``: ``attribution[n, j]`` is ``R^(c)_in`` of sample ``n`` for its
    ``j``-th concept, channel ``c = extras["channels"][n, j]``. ``extras``: ``"layer"`` (the
    conditioned leaf's key), ``"channels"`` ``(N, k)``, ``"concept_relevance"`` ``(N, k)`` (each
    selected channel's ``R_c``), ``"concept_share"`` ``(N, k)`` (``R_c / sum_c' |R_c'|``,
    zennit-crp's ``abs_norm``), ``"layer_relevance"`` ``(N, C)`` (every channel's ``R_c``).
    """

    heatmap_preset = "attribution"

    def __init__(
        self,
        lrp_analyzer: LRP,
        layer: str | int,
        features: Features,
        batch_size: int | None = None,
        progress: bool = True,
        channel_axis: int = 1,
    ):
        if not isinstance(lrp_analyzer, LRP):
            raise TypeError(f"CRP needs an npxai LRP analyzer, got {type(lrp_analyzer).__name__}")
        if not isinstance(features, Features):
            raise TypeError(
                f"CRP: features must be TopNFeatures(n) or IndexedFeatures(...), got {features!r}"
            )
        if batch_size is not None:
            batch_size = positive_int(batch_size, "CRP: batch_size (or None)")
        super().__init__(lrp_analyzer.model, lrp_analyzer.backend)
        self.lrp, self.features, self.batch_size = lrp_analyzer, features, batch_size
        self.progress = check_progress(progress, "CRP")
        if channel_axis not in (1, -1) or isinstance(channel_axis, bool):
            raise ValueError(f"CRP: channel_axis must be 1 or -1, got {channel_axis!r}")
        self.channel_axis = channel_axis
        self.layer = leaf_key(lrp_analyzer.model, layer, "CRP", index=True)
        channels = _known_channels(dict(lrp_analyzer.model.named_modules())[self.layer])
        if channels is not None:
            features.check(channels, self.layer)

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        if backend_or_default(self.backend) == "cuda":
            raise BackendError(
                "CRP does not run on the cuda backend: its per-concept gathering and masking are "
                "host (NumPy) code; use backend='numba' or backend='numpy'"
            )
        trace = self.model.trace(x, self.backend)
        indices = target_indices(trace.output, target)
        seed = output_seed(trace.output, indices, self.lrp.output_relevance == "logit")
        relevance = self.relevance_at_layer(trace, seed)  # R_L, (N, C, ...)
        if relevance.ndim < 2:
            raise ValueError(f"CRP: layer {self.layer!r} outputs {relevance.shape}: no channels")
        channel_first = np.moveaxis(relevance, self.channel_axis, 1)
        layer_relevance = channel_first.reshape(*channel_first.shape[:2], -1).sum(axis=2)  # R_c
        channels = self.features.select(layer_relevance, self.layer)  # (N, k)
        n, k = channels.shape
        rows = np.repeat(np.arange(n), k)  # (sample, concept) rows, sample-major
        concepts = self.conditional_relevance(trace, relevance, rows, channels.ravel())
        attribution = concepts.reshape(n, k, *trace.input.shape[1:])
        chosen = np.take_along_axis(layer_relevance, channels, axis=1)
        total = np.abs(layer_relevance).sum(axis=1, keepdims=True)
        share = np.divide(chosen, total, out=np.zeros_like(chosen), where=total > 0)
        return self.explanation(attribution, trace, indices, layer=self.layer, channels=channels,
                                concept_relevance=chosen, concept_share=share,
                                layer_relevance=layer_relevance)  # fmt: skip

    def relevance_at_layer(self, trace: Trace, seed: np.ndarray) -> np.ndarray:
        """``R_L``: the LRP relevance arriving at the conditioned layer's output (the backward
        walk from ``seed``, stopped there)."""
        rules, backend = self.lrp.rules, trace.backend

        def step(record: Record, relevance: Signal) -> Signal:
            return lrp_step(record, rules[record.key], relevance, backend)

        return self.model.backward_to(trace, seed, step, self.layer)

    def conditional_relevance(
        self, trace: Trace, relevance: np.ndarray, rows: np.ndarray, channels: np.ndarray
    ) -> np.ndarray:
        """``R^(c)_in`` for each row ``i``: sample ``rows[i]`` conditioned on channel
        ``channels[i]``, ``batch_size`` rows per backward pass."""
        size = self.batch_size or len(rows)
        progress = Progress("CRP", -(-len(rows) // size), self.progress)
        parts = []
        for done, i in enumerate(range(0, len(rows), size), 1):
            parts.append(self._conditional(trace, relevance, rows[i : i + size],
                                           channels[i : i + size]))  # fmt: skip
            progress.update(done)
        progress.close()
        return np.concatenate(parts)

    def _conditional(
        self, trace: Trace, relevance: np.ndarray, rows: np.ndarray, channels: np.ndarray
    ) -> np.ndarray:
        """One backward pass of the batch of rows. The walk visits the layers in the same order
        as LRP's: those before the conditioned layer (above it, or beside it) return zeros
        without computing anything; the conditioned layer starts from its masked relevance
        ``[channel = c] * R_L[n]``; every layer after it runs its LRP rule on its record
        gathered at ``rows`` (each sample repeated once per concept)."""
        rules, backend = self.lrp.rules, trace.backend
        axis = self.channel_axis % relevance.ndim
        mask = np.zeros((len(rows), relevance.shape[axis]), relevance.dtype)
        mask[np.arange(len(rows)), channels] = 1
        shape = [len(rows)] + [1] * (relevance.ndim - 1)
        shape[axis] = relevance.shape[axis]
        masked = relevance[rows] * mask.reshape(shape)
        reached, batch = False, len(relevance)

        def gather(a: Signal, ndim: int) -> Signal:  # a graph constant (a batch of 1, or none)
            if isinstance(a, tuple):  # stays as it is
                return tuple(t[rows] if t.ndim == ndim and len(t) == batch else t for t in a)
            return a[rows]

        def step(record: Record, signal: Signal) -> Signal:
            nonlocal reached
            if record.key == self.layer:
                reached, signal = True, masked
            elif not reached:  # no relevance passes through L to here: zeros of the input's shape
                x = record.input
                zeros = [np.zeros((len(rows), *a.shape[1:]), a.dtype) for a in _as_tuple(x)]
                return tuple(zeros) if isinstance(x, tuple) else zeros[0]
            ndim = record.output.ndim
            rows_record = Record(record.key, record.layer, gather(record.input, ndim),
                                 gather(record.output, ndim))  # fmt: skip
            return lrp_step(rows_record, rules[record.key], signal, backend)

        return self.model.backward(trace, masked, step)

    def __repr__(self) -> str:
        return f"CRP({self.lrp.composite.name}, layer={self.layer!r}, {self.features!r})"


def _as_tuple(a: Signal) -> tuple[np.ndarray, ...]:
    return a if isinstance(a, tuple) else (a,)


def _known_channels(layer: Any) -> int | None:
    """The channel count of a layer that states it (Conv2d, Linear), else ``None`` (known at the
    first call)."""
    for name in ("out_channels", "out_features"):
        if isinstance(getattr(layer, name, None), int):
            return getattr(layer, name)
    return None
