"""DeepLIFT with the Rescale rule (Shrikumar et al. 2017) and DeepLiftShap, as Captum 0.9.0
computes them.

DeepLIFT explains the difference of the target output ``t`` between the input ``x`` and a
reference (baseline) ``x0``, ``Delta t = f_t(x) - f_t(x0)``, by contributions ``C_{Delta x_i
Delta t}`` that add up to it (summation to delta): ``sum_i C_{Delta x_i Delta t} = Delta t``.
The contributions are ``C_{Delta x_i Delta t} = Delta x_i m_{Delta x_i Delta t}`` with
``Delta x_i = x_i - x0_i`` and multipliers ``m`` that follow the chain rule through the layers,
``m_{Delta x_i Delta t} = sum_j m_{Delta x_i Delta z_j} m_{Delta z_j Delta t}``, starting from
``m_{Delta t Delta t} = 1``. Each layer ``z -> y`` gives its multipliers ``m_{Delta z Delta y}``:

- the linear rule, on layers that are linear (affine) maps -- ``Linear``, ``Conv2d``, average
  pooling, means, padding and upsampling, batch norm (a fixed ``s z + b``), ``Add``, ``Concat``
  and the pass-through layers (``Flatten``, reshapes, slices, ``Dropout``, ``Identity``):
  ``m_{Delta z Delta y} = dy/dz``, their Jacobian, so the multipliers pass through their
  vector-Jacobian product (plain backpropagation);
- the Rescale rule, on element-wise activations ``y = g(z)`` (every layer of
  :data:`npxai.lrp.kinds.ACTIVATIONS`): ``m_{Delta z Delta y} = Delta y / Delta z =
  (g(z) - g(z0)) / (z - z0)``, and the gradient ``g'(z)`` at the layer's recorded input where
  ``|Delta z| < eps`` (Captum's ``eps = 1e-10``; for each of the two passes below its own
  gradient, at ``z`` and at ``z0``);
- max pooling (each window ``W``, output ``o = max_W z`` and ``o0 = max_W z0``), Captum's rule:
  with ``u = max(o, o0)``, the part ``u - o0`` of ``Delta o`` goes to the maximum of the window in
  ``z`` and the part ``o - u`` to the maximum in ``z0`` (the first maximal element, as torch's
  indices), each times the multiplier arriving at ``o``; the multiplier of an input element
  ``z_i`` is the sum ``c_i`` of what lands on it divided by ``Delta z_i``, ``c_i / Delta z_i``,
  and its gradient where ``|Delta z_i| < eps``. Where windows overlap the parts landing on one
  element are added (Captum's ``max_unpool`` keeps one of them; the two agree for windows that
  do not overlap, torch's default ``stride = kernel_size``).

As Captum, the forward pass runs once on the stacked batch ``[x; x0]`` and the backward walk
carries the multipliers of both halves, each seeded with the target (``1`` at ``f_t``, or the
per-class weights): they differ only where a layer falls back to its gradient, and the max-pool
rule reads both. The attribution is ``(x - x0) * m_{Delta x Delta t}`` (``multiply_by_inputs``,
Captum's default), or the multipliers ``m_{Delta x Delta t}`` themselves.

Layers that are neither linear nor one of the non-linearities above (``Softmax``, layer norms,
``Mul``, ``MatMul``, attention) are refused by the constructor with
:class:`~npxai.errors.UnsupportedLayerError` naming the layer: DeepLIFT has no rule for them,
and their gradient (what Captum silently uses for them) would break summation to delta without a
word. To explain a model that ends in a softmax, explain its logits (the model without it).

Differences from Captum:

- Where a non-linear module's output goes straight into another one (``ReLU`` then
  ``MaxPool2d``, as in VGG; ``MaxPool2d`` then ``ReLU``), Captum's tensor hooks hand the first
  one the signal before the second one's rule has replaced it: the second one, in effect, passes
  its gradient, and summation to delta fails (Captum issue #1104, fixed by its pull request
  #1843, not in 0.9.0). npxai applies every layer's rule (the chain rule of multipliers); the
  two agree where a linear layer stands between any two non-linear ones.
- The Rescale rule covers all of npxai's element-wise activations (Captum's only ``ReLU``,
  ``ELU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh`` and ``Softplus``; it backpropagates the
  gradient of the others, ``GELU``, ``SiLU``, ``ReLU6``, ...).
- A layer without a rule is an error (see above), not its gradient.
- Overlapping max-pool windows add up (see above).
- DeepLiftShap takes a single baseline too (Captum asks for two or more).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import backend_or_default
from ..checks import finite_number, flag, shown
from ..errors import BackendError, UnsupportedLayerError
from ..explanation import Explanation
from ..gradient import output_seed, target_indices
from ..lrp.kinds import (
    ACTIVATIONS,
    AVERAGE_POOLS,
    BATCH_NORMS,
    CONCATENATIONS,
    MAX_POOLS,
    MEANS,
    PARAMETRIC,
    PASS_THROUGH,
    RESAMPLING,
    SUMS,
)
from ..module import Layer, Module, Record, Step, check_input, vjp_step
from .base import Analyzer, Target, reject, to_numpy

#: The layers of DeepLIFT's linear rule: linear (affine) maps, whose multipliers are their
#: Jacobian (the signal passes through their VJP).
LINEAR = (PARAMETRIC + AVERAGE_POOLS + MEANS + RESAMPLING + BATCH_NORMS + SUMS + CONCATENATIONS
          + PASS_THROUGH)  # fmt: skip
#: Every layer DeepLift takes: the linear ones, the activations (Rescale) and max pooling.
SUPPORTED = LINEAR + ACTIVATIONS + MAX_POOLS


def _halves(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input's half and the reference's half of a stacked array ``[a(x); a(x0)]``."""
    n = len(a) // 2
    return a[:n], a[n:]


def _over_delta(part: np.ndarray, delta: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``part / delta`` (zero where ``|delta| < eps``), and that mask."""
    small = np.abs(delta) < eps
    return np.divide(part, delta, out=np.zeros_like(part), where=~small), small


def _both(ratio: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """``ratio`` (one half's shape) times each half of the stacked ``signal``."""
    return (signal.reshape(2, *ratio.shape) * ratio).reshape(signal.shape)


def _with_gradient(
    multipliers: np.ndarray, small: np.ndarray, gradient: Callable[[], np.ndarray]
) -> np.ndarray:
    """``multipliers`` (a new array, changed in place) with the gradient, computed only if
    needed, where ``small`` (one half's mask, for both halves)."""
    if small.any():
        halves = (2, *small.shape)
        np.copyto(multipliers.reshape(halves), gradient().reshape(halves), where=small)
    return multipliers


def rescale_step(backend: str, eps: float) -> Step:
    """The backward step of DeepLIFT's multipliers (see the module's docstring) on a trace of the
    stacked batch ``[x; x0]``: the Rescale rule at activations, Captum's rule at max pooling, the
    VJP elsewhere."""
    backprop = vjp_step(backend)

    def step(record: Record, signal: np.ndarray) -> Any:
        layer = record.layer
        if isinstance(layer, ACTIVATIONS):
            (z, z0), (y, y0) = _halves(record.input), _halves(record.output)
            ratio, small = _over_delta(y - y0, z - z0, eps)
            return _with_gradient(_both(ratio, signal), small, lambda: backprop(record, signal))
        if isinstance(layer, MAX_POOLS):
            (z, z0), (o, o0) = _halves(record.input), _halves(record.output)
            top = np.maximum(o, o0)
            landed = _halves(backprop(record, signal * np.concatenate([top - o0, o - top])))
            ratio, small = _over_delta(landed[0] + landed[1], z - z0, eps)
            multipliers = np.concatenate([ratio, ratio])
            return _with_gradient(multipliers, small, lambda: backprop(record, signal))
        return backprop(record, signal)

    return step


def _check_layers(model: Module, owner: str) -> None:
    """An :class:`UnsupportedLayerError` for the first leaf that DeepLIFT has no rule for."""
    for key, module in model.named_modules():
        if isinstance(module, Layer) and not isinstance(module, SUPPORTED):
            kind = type(module).__name__
            raise UnsupportedLayerError(
                f"{owner}: layer {key!r} ({kind}) has no DeepLIFT rule; {owner} takes linear "
                "layers (Linear, Conv2d, pooling, batch norm, Add, Concat, reshapes, ...), "
                "element-wise activations and MaxPool2d (explain a model ending in a Softmax "
                "by its logits: the model without it)",
                key,
                kind,
            )


def _check_reference(value: Any, name: str) -> np.ndarray:
    """``value`` as an array if it is a finite number or array of numbers, else ``ValueError``."""
    if isinstance(value, str) or (array := np.asarray(to_numpy(value))).dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a number or an array of numbers, got {shown(value)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return array


def _selected(output: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Each row's explained output: ``output[n, t_n]``, or ``sum_k w[n, k] output[n, k]``."""
    if indices.ndim == 2:
        return (output * indices).sum(axis=1)
    return output[np.arange(len(output)), indices]


class _Rescale(Analyzer):
    """What DeepLift and DeepLiftShap share: the layer check, ``eps``, ``multiply_by_inputs``
    and the backward walk on the stacked batch."""

    heatmap_preset = "attribution"

    def __init__(
        self, model: Module, eps: float, multiply_by_inputs: bool, backend: str | None
    ) -> None:
        super().__init__(model, backend)
        owner = type(self).__name__
        if self.backend == "cuda":
            raise BackendError(self._no_cuda())
        _check_layers(self.model, owner)
        self.eps = finite_number(eps, f"{owner}: eps", minimum=0)
        self.multiply_by_inputs = flag(multiply_by_inputs, f"{owner}: multiply_by_inputs")

    def _no_cuda(self) -> str:
        return (
            f"{type(self).__name__} does not run on the cuda backend (npxai's cuda kernels have "
            "no element-wise subtraction, division or selection, which the Rescale rule needs); "
            "use backend='numba' or 'numpy'"
        )

    def _input(self, x: Any) -> tuple[np.ndarray, str]:
        """``x`` checked, and the backend this call runs on."""
        backend = backend_or_default(self.backend)
        if backend == "cuda":
            raise BackendError(self._no_cuda())
        return check_input(x, "x", backend), backend

    def _explain(
        self,
        x: np.ndarray,
        reference: np.ndarray,
        pick: Callable[[np.ndarray], np.ndarray],
        backend: str,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The forward pass on ``[x; reference]`` (rows ``n`` of both explained together), the
        targets ``pick(f(x))`` and the multipliers walked back from them. Returns
        ``(attribution, convergence delta per row, f(x), targets)``."""
        trace = self.model.trace(np.concatenate([x, reference]), backend)
        output, reference_output = _halves(trace.output)
        indices = pick(output)
        seed = output_seed(output, indices)
        signal = self.model.backward(
            trace, np.concatenate([seed, seed]), rescale_step(backend, self.eps)
        )
        contributions = (x - reference) * _halves(signal)[0]
        delta = contributions.reshape(len(x), -1).sum(axis=1) - (
            _selected(output, indices) - _selected(reference_output, indices)
        )
        attribution = contributions if self.multiply_by_inputs else _halves(signal)[0]
        return attribution, delta, output, indices

    def _result(
        self,
        attribution: np.ndarray,
        output: np.ndarray,
        indices: np.ndarray,
        x: np.ndarray,
        **extras: Any,
    ) -> Explanation:
        return Explanation(
            attribution, output, indices, type(self).__name__, self.heatmap_preset, extras, x
        )

    def attribute(
        self,
        inputs: Any,
        baselines: float | np.ndarray | None = None,
        target: Target = None,
        return_convergence_delta: bool = False,
        **captum_args: Any,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Captum's ``attribute(inputs, baselines, target, return_convergence_delta=...)``:
        ``baselines`` is this analyzer's ``baseline`` (DeepLift) or ``baselines``
        (DeepLiftShap) unless given; with ``return_convergence_delta`` also
        ``extras["delta"]``, shaped as Captum's delta."""
        owner = type(self).__name__
        reject(owner, captum_args)
        return_convergence_delta = flag(
            return_convergence_delta, f"{owner}.attribute: return_convergence_delta"
        )
        analyzer = self
        if baselines is not None:
            analyzer = type(self)(
                self.model, baselines, self.eps, self.multiply_by_inputs, self.backend
            )
        explanation = analyzer(to_numpy(inputs), to_numpy(target))
        if return_convergence_delta:
            return explanation.attribution, explanation.extras["delta"]
        return explanation.attribution


class DeepLift(_Rescale):
    """DeepLIFT's Rescale rule against one baseline ``x0`` (see the module's docstring):
    ``R(x) = (x - x0) * m_{Delta x Delta t}``, with ``sum R(x) = f_t(x) - f_t(x0)``.

    ``baseline``: a number or an array that broadcasts to the input (one per sample ``(N, ...)``,
    one for all ``(...)`` or ``(1, ...)``). ``eps``: where ``|Delta z| < eps`` a non-linearity
    passes its gradient. ``multiply_by_inputs=False``: the multipliers ``m_{Delta x Delta t}``
    (Captum's flag). The target is chosen on ``x`` (its arg-max by default).
    ``extras["delta"]``: the convergence delta ``sum R(x) - (f_t(x) - f_t(x0))`` per sample (of
    the contributions ``(x - x0) * m``, whatever ``multiply_by_inputs``), zero up to rounding.
    The numpy and numba backends; the cuda backend is a :class:`~npxai.errors.BackendError`.
    """

    def __init__(
        self,
        model: Module,
        baseline: float | np.ndarray = 0.0,
        eps: float = 1e-10,
        multiply_by_inputs: bool = True,
        backend: str | None = None,
    ):
        super().__init__(model, eps, multiply_by_inputs, backend)
        self.baseline = _check_reference(baseline, "DeepLift: baseline")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        x, backend = self._input(x)
        baseline = self._fit(x)
        attribution, delta, output, indices = self._explain(
            x, baseline, lambda output: target_indices(output, target), backend
        )
        return self._result(attribution, output, indices, x, delta=delta)

    def _fit(self, x: np.ndarray) -> np.ndarray:
        """The baseline as an array of ``x``'s shape and dtype."""
        try:
            return np.broadcast_to(self.baseline.astype(x.dtype), x.shape)
        except ValueError:
            raise ValueError(
                f"DeepLift: baseline of shape {self.baseline.shape} does not fit the input of "
                f"shape {x.shape}; expected a number or an array that broadcasts to it: of "
                f"shape {x.shape}, {(1, *x.shape[1:])} or {x.shape[1:]}"
            ) from None


class DeepLiftShap(_Rescale):
    """The mean of DeepLift over baselines ``b_1..b_B`` (Captum's ``DeepLiftShap``):
    ``R(x) = 1/B sum_j (x - b_j) * m_{Delta x Delta t}(x, b_j)``, with
    ``sum R(x) = f_t(x) - 1/B sum_j f_t(b_j)``.

    ``baselines``: an array ``(B, ...)`` of ``B >= 1`` finite baselines of one sample's shape.
    Each sample is explained against every baseline in one forward pass of ``2 N B`` rows (row
    ``n B + j``: sample ``n``, baseline ``j``, as Captum orders them). ``extras["delta"]``: the
    convergence delta of each pair, ``(N B,)``. ``eps``, ``multiply_by_inputs``, the target
    and the backends as :class:`DeepLift`.
    """

    def __init__(
        self,
        model: Module,
        baselines: np.ndarray,
        eps: float = 1e-10,
        multiply_by_inputs: bool = True,
        backend: str | None = None,
    ):
        super().__init__(model, eps, multiply_by_inputs, backend)
        self.baselines = _check_reference(baselines, "DeepLiftShap: baselines")
        if self.baselines.ndim < 2 or len(self.baselines) < 1:
            raise ValueError(
                "DeepLiftShap: baselines must be an array (B, ...) of B >= 1 baselines, each of "
                f"one sample's shape, got shape {self.baselines.shape}"
            )

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        x, backend = self._input(x)
        if self.baselines.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"DeepLiftShap: baselines of shape {self.baselines.shape} do not fit the input of "
                f"shape {x.shape}; expected shape (B, {', '.join(map(str, x.shape[1:]))}), "
                "B >= 1 baselines of one sample's shape"
            )
        count = len(self.baselines)
        repeated = np.repeat(x, count, axis=0)
        references = np.tile(self.baselines.astype(x.dtype), (len(x),) + (1,) * (x.ndim - 1))

        def pick(output: np.ndarray) -> np.ndarray:
            return np.repeat(target_indices(output[::count], target), count, axis=0)

        attribution, delta, output, indices = self._explain(repeated, references, pick, backend)
        mean = attribution.reshape(len(x), count, *x.shape[1:]).mean(axis=1)
        return self._result(mean, output[::count], indices[::count], x, delta=delta)
