"""What the model-agnostic (perturbation) analyzers share: the model as a function ``x -> scores
(N, K)``, the baselines, and the cooperative game of a batch.

The game of sample ``n`` with features ``1..M`` (see :mod:`npxai.analyzers.features`) gives a
coalition ``S`` (the binary vector ``z``, ``z_j = 1`` for ``j`` in ``S``) the explained output of
the sample with the features outside ``S`` set to the baseline::

    v_n(S) = f(h_n(z))_t,    h_n(z)_i = z_{m(i)} x_{n,i} + (1 - z_{m(i)}) b_{n,i}

``m(i)`` the feature of entry ``i``, ``t`` the target (an index, or per-class weights: then
``sum_k w_k f_k``). ``v_n(all) = f(x_n)_t`` and ``v_n(none) = f(b_n)_t``.
"""

from __future__ import annotations

import copy
import functools
import sys
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import backend_or_default
from ..checks import positive_int, shown
from ..errors import TooManyFeaturesError
from ..explanation import Explanation
from ..gradient import target_indices
from ..module import Module, check_input
from .base import Analyzer, Target, as_model, to_numpy
from .features import FeatureMask, check_feature_mask, feature_labels


def forward_function(model: Any, backend: str | None) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> scores (N, K)``: an npxai model (or a torch module, converted) run on ``backend``,
    or any other callable as it is (a scikit-learn ``predict_proba``, a remote service), its
    result read as a float array."""
    torch = sys.modules.get("torch")  # a torch module exists only once torch is imported
    if isinstance(model, Module) or (torch is not None and isinstance(model, torch.nn.Module)):
        module = as_model(model)
        return lambda x: module(x, backend=backend)
    if not callable(model):
        raise TypeError(
            "a model-agnostic analyzer needs an npxai Module, a torch.nn.Module or a callable "
            f"f(x) -> scores of shape (N, K), got {type(model).__name__}"
        )

    def call(x: np.ndarray) -> np.ndarray:
        scores = np.asarray(model(x))
        if scores.ndim != 2 or len(scores) != len(x) or scores.dtype.kind not in "fiub":
            raise ValueError(
                f"the model callable must return scores of shape (N, K) = ({len(x)}, K) for "
                f"{len(x)} inputs, got {scores.dtype} {scores.shape}"
            )
        return scores.astype(x.dtype, copy=False)

    return call


def explained_rows(scores: np.ndarray, indices: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """The explained output of each row of ``scores``, row ``r`` being a copy of sample
    ``samples[r]`` (whose target is ``indices[samples[r]]``)."""
    if indices.ndim == 2:
        return (scores * indices[samples]).sum(axis=1)
    return scores[np.arange(len(scores)), indices[samples]]


def check_baselines(baselines: Any, owner: str) -> np.ndarray:
    """The constructor's check: a number or an array of finite numbers."""
    baseline = np.asarray(baselines)
    if baseline.dtype.kind not in "fiub" or not np.isfinite(baseline).all():
        raise ValueError(f"{owner}: baselines must be finite numbers, got {shown(baselines)}")
    return baseline


def broadcast_baselines(baselines: np.ndarray, x: np.ndarray, owner: str) -> np.ndarray:
    """``baselines`` (a number, a sample, the batch or a batch of one) broadcast to ``x``."""
    try:
        return np.broadcast_to(baselines.astype(x.dtype), x.shape)
    except ValueError:
        raise ValueError(
            f"{owner}: baselines of shape {baselines.shape} do not fit the input {x.shape}: give "
            f"a number, a sample's shape {x.shape[1:]}, or the batch's"
        ) from None


class Game:
    """The games ``v_n`` of a batch (see :mod:`npxai.analyzers.perturbation`): ``game(samples,
    present)`` evaluates the coalitions ``present[r]`` (bool ``(R, M)``, one column per
    feature, ``M`` at least each sample's count, columns beyond it ignored) of samples
    ``samples[r]``, ``batch_size`` rows per model call (:meth:`values`: per-sample blocks of
    coalitions). ``full`` and :attr:`empty`: ``v_n(all)`` and ``v_n(none)`` (``(N,)``, float64,
    as every value returned)."""

    def __init__(
        self,
        forward: Callable[[np.ndarray], np.ndarray],
        x: np.ndarray,
        baseline: np.ndarray,
        labels: np.ndarray,
        counts: np.ndarray,
        output: np.ndarray,
        indices: np.ndarray,
        batch_size: int,
    ):
        self.forward, self.shape, self.batch_size = forward, x.shape, batch_size
        self.x, self.baseline = x.reshape(len(x), -1), baseline.reshape(len(x), -1)
        self.labels, self.counts, self.indices = labels, counts, indices
        self.full = explained_rows(output, indices, np.arange(len(x))).astype(np.float64)

    @functools.cached_property
    def empty(self) -> np.ndarray:
        """``v_n(none)``, evaluated when first asked for (LIME does not)."""
        return self(np.arange(len(self.x)), np.zeros((len(self.x), int(self.counts.max())), bool))

    def values(self, coalitions: list[np.ndarray]) -> list[np.ndarray]:
        """``v_n`` of each sample's coalitions ``coalitions[n]`` (``(R_n, M_n)``, 0/1), all
        evaluated together, sample after sample."""
        lengths = [len(block) for block in coalitions]
        present = np.zeros((sum(lengths), int(self.counts.max())), bool)
        for block, start in zip(coalitions, np.cumsum([0, *lengths[:-1]]), strict=True):
            present[start : start + len(block), : block.shape[1]] = block
        values = self(np.repeat(np.arange(len(coalitions)), lengths), present)
        return np.split(values, np.cumsum(lengths)[:-1])

    def __call__(self, samples: np.ndarray, present: np.ndarray) -> np.ndarray:
        values = np.empty(len(samples))
        for start in range(0, len(samples), self.batch_size):
            rows = slice(start, start + self.batch_size)
            which, chunk = samples[rows], present[rows]
            starts = [0, *(np.flatnonzero(np.diff(which)) + 1)]
            parts = [  # one sample's run of rows at a time: its x, b and labels shared
                np.where(np.take(chunk[a:z], self.labels[which[a]], axis=1), self.x[which[a]],
                         self.baseline[which[a]])
                for a, z in zip(starts, [*starts[1:], len(which)], strict=True)
            ]  # fmt: skip
            inputs = parts[0] if len(parts) == 1 else np.concatenate(parts)
            scores = self.forward(inputs.reshape(len(which), *self.shape[1:]))
            values[rows] = explained_rows(scores, self.indices, which)
        return values


class PerturbationAnalyzer(Analyzer):
    """The shared frame: ``model`` an npxai model, a torch module or any callable ``f(x) ->
    scores (N, K)``; ``feature_mask`` the features (:mod:`npxai.analyzers.features`);
    ``baselines`` a number, an array of a sample's shape, or the batch's (or a batch of one);
    ``batch_size`` the rows of one model call. A subclass gives :meth:`feature_attribution`.

    The attribution of every entry is its feature's value (Captum's convention, its Lime's
    ``return_input_shape=True``): a feature of many entries carries its whole value at each.
    ``extras``: ``"feature_attribution"`` ``(N, M_max)`` (the per-feature values, zero beyond a
    sample's count), ``"feature_mask"`` (``(N, *sample)`` int64, entry ``i`` of sample ``n`` in
    feature ``0..M_n - 1``), ``"n_features"`` ``(N,)``, and the method's own."""

    heatmap_preset = "attribution"

    #: The most features of a sample the method takes, and why (``None``: no limit); more is a
    #: :class:`~npxai.errors.TooManyFeaturesError`, raised before the model runs.
    max_features: tuple[int, str] | None = None

    def __init__(
        self,
        model: Any,
        feature_mask: FeatureMask,
        baselines: float | np.ndarray,
        batch_size: int,
        backend: str | None,
    ):
        name = type(self).__name__
        self.backend = None if backend is None else backend_or_default(backend)
        self.forward = forward_function(model, self.backend)
        self.model = model
        self.feature_mask = check_feature_mask(feature_mask, name)
        self.baselines = check_baselines(baselines, name)
        self.batch_size = positive_int(batch_size, f"{name}: batch_size")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        name = type(self).__name__
        x = check_input(x)
        baseline = broadcast_baselines(self.baselines, x, name)
        labels, counts = feature_labels(self.feature_mask, x, name)
        if self.max_features is not None and counts.max() > self.max_features[0]:
            n = int(np.argmax(counts > self.max_features[0]))
            raise TooManyFeaturesError(
                f"{name}: sample {n} has {counts[n]} features, more than the "
                f"{self.max_features[0]} {self.max_features[1]}; give a feature_mask with fewer "
                "features (superpixels)"
            )
        output = self.forward(x)
        indices = target_indices(output, target)
        game = Game(self.forward, x, baseline, labels, counts, output, indices, self.batch_size)
        values, extras = self.feature_attribution(game)
        attribution = values[np.arange(len(x))[:, None], labels].reshape(x.shape).astype(x.dtype)
        extras = {"feature_attribution": values, "feature_mask": labels.reshape(x.shape),
                  "n_features": counts, **extras}  # fmt: skip
        return Explanation(attribution, output, indices, name, self.heatmap_preset, extras, x)

    @abstractmethod
    def feature_attribution(self, game: Game) -> tuple[np.ndarray, dict[str, Any]]:
        """The per-feature values ``(N, M_max)`` (float64) and the method's extras."""

    def explain_with(
        self,
        inputs: Any,
        target: Target,
        baselines: Any,
        feature_mask: Any,
        perturbations_per_eval: int | None,
        n_samples: int | None = None,
    ) -> Explanation:
        """Captum's ``attribute``: ``self(inputs, target)`` with the arguments given (not
        ``None``) in place of this analyzer's; ``perturbations_per_eval`` copies of the batch in
        one model call (``batch_size = perturbations_per_eval * N``). Tensors are read on the
        host."""
        name, x = f"{type(self).__name__}.attribute", to_numpy(inputs)
        analyzer = copy.copy(self)
        if baselines is not None:
            analyzer.baselines = check_baselines(to_numpy(baselines), name)
        if feature_mask is not None:
            analyzer.feature_mask = check_feature_mask(to_numpy(feature_mask), name)
        if perturbations_per_eval is not None:
            per_eval = positive_int(perturbations_per_eval, f"{name}: perturbations_per_eval")
            analyzer.batch_size = per_eval * len(np.asarray(x))
        if n_samples is not None:
            analyzer.n_samples = positive_int(n_samples, f"{name}: n_samples")
        return analyzer(x, to_numpy(target))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, backend={self.backend!r})"
