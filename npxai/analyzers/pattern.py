"""PatternNet and PatternAttribution (Kindermans et al., ICLR 2018): patterns learned from data.

For a linear model ``y = w^T x`` with data ``x = s + d`` (signal ``s = a y``, distractor ``d``),
the weight ``w`` (what the gradient shows) filters the distractor out and need not point along
the signal; the pattern ``a`` (:mod:`npxai.analyzers.patterns`: ``a = cov[x, y] / var[y]``, or
its ReLU version ``a+`` over the active samples) does. ``fit`` learns one pattern per output unit
of every ``Linear`` and ``Conv2d`` layer from the layers' inputs and outputs on the data.

Both methods start from the explained output's value ``y_t`` (``R = y_t`` at ``output[n, t]``,
zero elsewhere; the paper's ``r^output = y``, iNNvestigate 1.x's seed) and walk back through the
layers, reading the forward pass:

- PatternNet (the signal estimate): at each ``Linear``/``Conv2d`` layer the signal
  goes back through the transposed map with the pattern in place of the weight,
  ``r_x = A^T r_y`` (``r_x[i] = sum_j a_ji r_y[j]``; the transposed convolution with kernel
  ``a``); for a linear model this is ``a y``, the signal;
- PatternAttribution (the deep Taylor decomposition with the root point
  ``x0 = x - a+ (w^T x)``): the same walk with ``w ⊙ a`` (the element-wise product of weight and
  pattern) in place of the weight, ``r_x[i] = sum_j w_ji a_ji r_y[j]``; for a linear model this
  is ``w ⊙ a y``. The result is that backward signal, not multiplied by the input (as
  iNNvestigate 1.x).

Every other layer passes the signal as its gradient does: ReLU keeps it where the forward input
was positive (the gradient's gate), max pooling routes it to the recorded maxima (the switches),
average pooling, batch norm, padding, upsampling, means, flatten and reshapes through their
fixed linear maps, residual sums and concatenations split it as the gradient; other element-wise
activations through their derivative (the method is derived for ReLU networks; iNNvestigate 1.x
warns for others). Layers without a pattern rule in the paper (layer norms, products of two
activations, softmax inside the model, attention) raise :class:`~npxai.errors.UnsupportedLayerError`
when the analyzer is built. Biases take no part in the backward walk. iNNvestigate 1.x also
rescales the signal at bottleneck layers to ``[-1, 1]`` (its ``reverse_project_bottleneck_layers``);
here nothing is rescaled.

Patterns are float64 (``fit``, ``save``, ``load``). ``fit`` runs the model in float64 on the
analyzer's backend and sums the statistics with NumPy on the host; the backward walk runs in the
input's dtype on the analyzer's backend (``numpy``, ``numba`` or ``cuda``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..checks import positive_int, shown
from ..device import to_device, to_host
from ..errors import NotFittedError, PatternFileError, UnsupportedLayerError
from ..explanation import Explanation
from ..gradient import output_seed, target_indices
from ..io import DAMAGED, check_file
from ..lrp import kinds as K
from ..module import Layer, Module, Record, Signal, Step, check_input, vjp_step
from .base import Analyzer, Target, to_numpy
from .patterns import ESTIMATORS, Moments

#: Layers that pass the signal as their gradient does.
GRADIENT_PASSED = (K.ACTIVATIONS + K.MAX_POOLS + K.AVERAGE_POOLS + K.MEANS + K.RESAMPLING
                   + K.BATCH_NORMS + K.SUMS + K.CONCATENATIONS + K.PASS_THROUGH)  # fmt: skip
#: The name of the estimator's entry in a pattern file (the others are layer keys).
ESTIMATOR_KEY = "__estimator__"
#: Rows per forward pass when ``fit`` is given one array and no ``batch_size``.
DEFAULT_BATCH_SIZE = 32


def _parametric_layers(model: Module, owner: str) -> dict[str, Layer]:
    """The model's ``Linear`` and ``Conv2d`` layers by key; any leaf that is neither one nor a
    layer of :data:`GRADIENT_PASSED` is an :class:`UnsupportedLayerError` naming it."""
    found = {}
    for key, module in model.named_modules():
        if not isinstance(module, Layer):
            continue
        if isinstance(module, K.PARAMETRIC):
            found[key] = module
        elif not isinstance(module, GRADIENT_PASSED):
            name = type(module).__name__
            raise UnsupportedLayerError(
                f"{owner} has no rule for layer {key!r} ({name}): it is defined for Linear and "
                "Conv2d layers (patterns) and layers that pass the signal as their gradient "
                "(activations, pooling, batch norm, padding, upsampling, means, sums, "
                "concatenations, flatten and reshapes)"
                + ("; explain the logits, without a trailing Softmax" if name == "Softmax" else ""),
                key,
                name,
            )
    if not found:
        raise ValueError(f"{owner}: the model has no Linear or Conv2d layer to learn a pattern for")
    return found


class PatternNet(Analyzer):
    """PatternNet: the output's value walked back with each layer's pattern in place of its
    weight, ``r_x = A^T r_y`` (see the module's docstring); the patterns come from :meth:`fit`
    or :meth:`load`.

    ``estimator``: ``"two_component"`` (``S_a+``, the paper's choice for ReLU networks) or
    ``"linear"`` (``S_a``); see :mod:`npxai.analyzers.patterns`.
    """

    heatmap_preset = "sensitivity"

    def __init__(self, model: Module, estimator: str = "two_component", backend: str | None = None):
        super().__init__(model, backend)
        owner = type(self).__name__
        if estimator not in ESTIMATORS:
            raise ValueError(
                f"{owner}: estimator must be one of {', '.join(map(repr, ESTIMATORS))}, got "
                f"{shown(estimator)}"
            )
        self.estimator = estimator
        self._layers = _parametric_layers(self.model, owner)
        self._patterns: dict[str, np.ndarray] | None = None
        self._kernels: dict[tuple[str, str, bool], Any] = {}  # by key, dtype, on the device

    @property
    def patterns(self) -> dict[str, np.ndarray]:
        """Each ``Linear``/``Conv2d`` layer's pattern by key (float64, the weight's shape)."""
        return dict(self._fitted())

    def fit(self, data: Any, batch_size: int | None = None) -> PatternNet:
        """Learn the patterns from ``data``: an array ``(N, ...)`` of inputs (or a torch tensor),
        run ``batch_size`` rows at a time (default 32), or an iterable of such batches, used as
        they come (then no ``batch_size``; a list is a list of batches).
        The model runs in float64 on the analyzer's backend; the statistics are summed over
        every batch (replacing any earlier patterns). Returns ``self``."""
        owner = type(self).__name__
        batches = self._batches(data, batch_size, owner)
        moments = {key: Moments(layer, self.estimator) for key, layer in self._layers.items()}
        seen = 0
        for index, batch in enumerate(batches):
            x = check_input(to_numpy(batch), f"{owner}.fit: batch {index}").astype(np.float64)
            trace = self.model.trace(x, self.backend)
            for key, stats in moments.items():
                if key not in trace.records:
                    raise ValueError(f"{owner}.fit: layer {key!r} did not run in the forward pass")
                record = trace.records[key]
                stats.add(to_host(record.input), to_host(record.output))
            seen += 1
        if not seen:
            raise ValueError(f"{owner}.fit: data holds no batch")
        self._set({key: stats.pattern() for key, stats in moments.items()})
        return self

    @staticmethod
    def _batches(data: Any, batch_size: int | None, owner: str) -> Iterable[Any]:
        data = to_numpy(data)
        if isinstance(data, np.ndarray):
            data = check_input(data, f"{owner}.fit: data")
            size = DEFAULT_BATCH_SIZE
            if batch_size is not None:
                size = positive_int(batch_size, f"{owner}.fit: batch_size")
            return (data[start : start + size] for start in range(0, len(data), size))
        if batch_size is not None:
            raise ValueError(
                f"{owner}.fit: batch_size is for an array of inputs; the batches of an iterable "
                "are used as they come"
            )
        if not isinstance(data, Iterable) or isinstance(data, str | bytes):
            raise TypeError(
                f"{owner}.fit: data must be an array (N, ...) or an iterable of batches, got "
                f"{type(data).__name__}"
            )
        return data

    def save(self, path: str | os.PathLike) -> None:
        """Write the patterns and the estimator's name to ``path`` as an .npz archive (at
        ``path`` exactly: no suffix is added), one array per layer key."""
        patterns = self._fitted()
        with open(path, "wb") as f:
            np.savez(f, **patterns, **{ESTIMATOR_KEY: np.array(self.estimator)})

    def load(self, path: str | os.PathLike) -> PatternNet:
        """Read patterns written by :meth:`save` (by this class or the other pattern analyzer).
        Nothing is executed (``np.load`` with ``allow_pickle=False``). The file must hold this
        analyzer's estimator and one pattern for each ``Linear``/``Conv2d`` key of the model,
        shaped as its weight, finite, and nothing else: every mismatch is reported in one
        :class:`~npxai.errors.PatternFileError` (a missing file:
        :class:`~npxai.errors.MissingFileError`). Returns ``self``."""
        check_file(path, "pattern")
        try:
            with np.load(path, allow_pickle=False) as archive:
                stored = {name: archive[name] for name in archive.files}
            if not all(isinstance(value, np.ndarray) for value in stored.values()):
                raise ValueError("a member is not a .npy array")
        except DAMAGED as error:
            raise PatternFileError(
                f"{path}: not a readable .npz pattern file ({type(error).__name__}: "
                f"{str(error)[:200]})"
            ) from None
        estimator = stored.pop(ESTIMATOR_KEY, None)
        problems = []
        if estimator is None:
            problems.append(f"  no {ESTIMATOR_KEY!r} entry (the estimator's name)")
        elif estimator.dtype.kind != "U" or estimator.ndim or str(estimator) != self.estimator:
            problems.append(
                f"  fitted with estimator {shown(estimator.tolist())}; this "
                f"{type(self).__name__} uses {self.estimator!r}"
            )
        for key, layer in self._layers.items():
            if key not in stored:
                problems.append(f"  missing key: {key!r} ({type(layer).__name__})")
                continue
            value, shape = stored[key], layer.weight.shape
            if value.shape != shape or value.dtype.kind != "f":
                problems.append(
                    f"  {key!r}: {value.dtype} array of shape {value.shape}; the layer's weight "
                    f"is {shape}"
                )
            elif not np.isfinite(value).all():
                problems.append(f"  {key!r}: holds NaN or Inf")
        problems += [f"  unexpected key: {key!r}" for key in stored if key not in self._layers]
        if problems:
            raise PatternFileError(
                f"{path}: the patterns do not fit this {type(self).__name__} "
                f"({len(problems)} problems):\n" + "\n".join(problems)
            )
        self._set({key: stored[key].astype(np.float64) for key in self._layers})
        return self

    def _set(self, patterns: dict[str, np.ndarray]) -> None:
        self._patterns, self._kernels = patterns, {}

    def _fitted(self) -> dict[str, np.ndarray]:
        if self._patterns is None:
            raise NotFittedError(
                f"{type(self).__name__} has no patterns yet; call fit(data) or load(path) first"
            )
        return self._patterns

    def _kernel(self, key: str) -> np.ndarray:
        """What replaces layer ``key``'s weight in the backward walk (float64): its pattern."""
        return self._fitted()[key]

    def _step(self, backend: str) -> Step:
        backprop = vjp_step(backend)

        def step(record: Record, signal: Signal) -> Signal:
            if record.key not in self._layers:
                return backprop(record, signal)
            dtype = record.output.dtype
            cache = (record.key, np.dtype(dtype).str, backend == "cuda")
            if cache not in self._kernels:
                kernel = self._kernel(record.key).astype(dtype)
                self._kernels[cache] = to_device(kernel) if backend == "cuda" else kernel
            return record.layer.affine_transpose(
                signal, self._kernels[cache], record.input, backend
            )

        return step

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        """Explain ``x`` for ``target``: the signal at the input (``x``'s shape and dtype)."""
        self._fitted()
        trace = self.model.trace(x, self.backend)
        indices = target_indices(trace.output, target)
        seed = output_seed(trace.output, indices, scale_by_output=True)
        signal = self.model.backward(trace, seed, self._step(trace.backend))
        return self.explanation(signal, trace, indices)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.model).__name__}, estimator={self.estimator!r}, "
            f"backend={self.backend!r})"
        )


class PatternAttribution(PatternNet):
    """PatternAttribution: the output's value walked back with ``w ⊙ a`` (weight times pattern,
    element-wise) in place of each ``Linear``/``Conv2d`` layer's weight (see the module's
    docstring); not multiplied by the input."""

    heatmap_preset = "attribution"

    def _kernel(self, key: str) -> np.ndarray:
        """``w ⊙ a``: layer ``key``'s weight times its pattern, element-wise (float64)."""
        return self._layers[key].weight.astype(np.float64) * self._fitted()[key]
