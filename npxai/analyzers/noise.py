"""Wrappers that run any analyzer ``A`` (Gradient, InputTimesGradient, IntegratedGradients, LRP,
...) on many copies of the input and combine the results: Captum's ``NoiseTunnel`` (SmoothGrad,
SmoothGrad squared, VarGrad) and ExplainableAI.jl's ``NoiseAugmentation`` and
``InterpolationAugmentation``.

Each wrapper is itself an analyzer, ``wrapper(x, target) -> Explanation``, with the inner
analyzer's heatmap preset. What they share:

- The target is chosen once, on the clean input ``x`` (its arg-max by default), with a forward pass
  of the inner analyzer's model on its backend; every copy explains that same output (as Captum,
  which repeats the given target for each copy, and ExplainableAI.jl, whose
  ``AugmentationSelector`` passes the clean input's selection on).
- The copies ``x_k`` (``k = 0..m-1`` for each of the ``N`` samples) are made on the host, row
  ``r`` being copy ``r // N`` of sample ``r % N``, ``batch_size`` rows at a time; each batch goes
  through the inner analyzer with its rows' targets, and the results are summed as they come, so
  at most ``batch_size`` copies and their attributions are in memory at once.
- The inner analyzer sees a copy as its input: ``InputTimesGradient`` multiplies by the noisy copy
  ``x + e`` (as Captum's ``NoiseTunnel(InputXGradient)``), ``IntegratedGradients`` integrates from
  its baseline to the copy and multiplies by ``x + e - b`` (as Captum's
  ``NoiseTunnel(IntegratedGradients)``). Its settings must hold for any batch of copies, so an
  ``IntegratedGradients`` baseline is a number or one sample's shape, not one per sample.
- Noise: ``e_k = sigma * eps_k``, ``eps = np.random.default_rng(seed).standard_normal((m,
  *x.shape))`` (drawn batch by batch in row order: the same numbers as one draw), as
  :class:`~npxai.analyzers.smoothgrad.SmoothGrad`; a seed gives the same result every time.
- The explanation: ``output`` the clean input's, ``target`` the clean input's targets,
  ``analyzer`` the wrapper's name, ``extras["analyzer"]`` the inner analyzer's name and the
  wrapper's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..checks import finite_number, optional_seed, positive_int, shown
from ..device import deliver, is_device, to_host
from ..explanation import Explanation
from ..gradient import target_indices
from ..module import Module, check_input
from ..progress import Progress, check_progress
from .base import Analyzer, Target, repeat_targets, to_numpy
from .integrated_gradients import quadrature
from .occlusion import forward_function
from .smoothgrad import noise_scale

#: Captum's ``nt_type`` values: the mean, the mean of squares, and the variance of the copies'
#: attributions.
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")

#: ``(copies, targets) -> attributions``: the inner analyzer on one batch of copies.
Attribute = Callable[[np.ndarray, np.ndarray], np.ndarray]


class _Wrapper(Analyzer):
    """What the wrappers share (see :mod:`npxai.analyzers.noise`): the inner analyzer, the clean
    input's targets, and the weighted sums of the copies' attributions."""

    def __init__(self, analyzer: Analyzer, batch_size: int, progress: bool):
        name = type(self).__name__
        if not isinstance(analyzer, Analyzer):
            hint = f"; wrap the model first: {name}(npxai.Gradient(model))"
            raise TypeError(
                f"{name}: analyzer must be an npxai analyzer (npxai.Gradient(model), "
                f"npxai.LRP(model), ...), got {type(analyzer).__name__}"
                + (hint if isinstance(analyzer, Module) else "")
            )
        self.analyzer, self.model, self.backend = analyzer, analyzer.model, analyzer.backend
        self.forward = forward_function(analyzer.model, analyzer.backend)
        self.heatmap_preset = analyzer.heatmap_preset
        self.batch_size = positive_int(batch_size, f"{name}: batch_size")
        self.progress = check_progress(progress, name)

    def explain(
        self,
        x: Any,
        host: np.ndarray,
        target: Target,
        weights: np.ndarray,
        make_copies: Callable[[np.ndarray], np.ndarray],
        combine: Callable[[np.ndarray, np.ndarray], np.ndarray],
        attribute: Attribute | None = None,
        shifted: bool = False,
        **extras: Any,
    ) -> Explanation:
        """Explain ``x`` (``host``: the same batch as a checked host array) from ``m =
        len(weights)`` copies of each sample, ``make_copies(rows)`` making the given rows' copies, run through the inner
        analyzer (or ``attribute``). The attribution is ``combine(first, second)``, where per
        sample ``first = sum_k w_k (a_k - c)`` and ``second = sum_k w_k (a_k - c)^2``, ``a_k``
        copy ``k``'s attribution and ``c`` copy 0's if ``shifted``, else 0 (the shift keeps a
        variance from cancelling large terms)."""
        output = to_host(self.forward(host))
        indices = target_indices(output, target)
        if attribute is None:

            def attribute(copies: np.ndarray, targets: np.ndarray) -> np.ndarray:
                return self.analyzer(copies, targets).attribution

        samples, copies = len(host), len(weights)
        targets = repeat_targets(indices, copies)
        progress = Progress(type(self).__name__, -(-len(targets) // self.batch_size), self.progress)
        shift = first = second = None
        try:
            for done, start in enumerate(range(0, len(targets), self.batch_size), 1):
                rows = np.arange(start, min(start + self.batch_size, len(targets)))
                a = to_host(attribute(make_copies(rows), targets[rows]))
                if shift is None:
                    shift, first, second = (np.zeros((samples, *a.shape[1:]), a.dtype)
                                            for _ in range(3))  # fmt: skip
                sample = rows % samples
                if shifted:  # copy 0 of a sample (row < N) comes before its other copies
                    shift[rows[rows < samples]] = a[rows < samples]
                d = a - shift[sample]
                w = weights.astype(a.dtype)[rows // samples].reshape(-1, *(1,) * (a.ndim - 1))
                np.add.at(first, sample, w * d)
                np.add.at(second, sample, w * d * d)
                progress.update(done)
        finally:
            progress.close()
        on_device = is_device(x)
        return Explanation(
            deliver(combine(first, second), on_device),
            deliver(output, on_device),
            indices,
            type(self).__name__,
            self.heatmap_preset,
            {"analyzer": type(self.analyzer).__name__, **extras},
            x if on_device else host,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.analyzer!r})"


def noisy_copies(
    rng: np.random.Generator, x: np.ndarray, sigma: float | np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """``rows -> x[rows % N] + sigma_n * eps[rows]`` (``sigma`` one number, or one per sample
    ``n = rows % N``), ``eps`` standard normal, drawn from ``rng`` as rows are asked for, in order
    (the same numbers as one draw of ``(m * N, *x.shape[1:])``)."""
    sigma = np.broadcast_to(np.asarray(sigma, x.dtype), (len(x),))

    def make(rows: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal((len(rows), *x.shape[1:])).astype(x.dtype)
        return x[rows % len(x)] + noise * sigma[rows % len(x)].reshape(-1, *(1,) * (x.ndim - 1))

    return make


class NoiseTunnel(_Wrapper):
    """Captum's ``NoiseTunnel``: the inner analyzer's attributions ``a_k = A(x + e_k)`` of
    ``m = nt_samples`` noisy copies, ``e_k ~ N(0, stdevs^2 I)``, combined per ``nt_type``:

    - ``"smoothgrad"``: ``1/m sum_k a_k`` (SmoothGrad, Smilkov et al. 2017);
    - ``"smoothgrad_sq"``: ``1/m sum_k a_k^2``;
    - ``"vargrad"``: ``1/m sum_k a_k^2 - (1/m sum_k a_k)^2``, the variance with divisor ``m``
      (Adebayo et al. 2018), computed about copy 0's attribution (``a_k - a_0``), which is the
      same number without the cancellation of two large means in float32.

    ``stdevs`` is absolute and the same for every sample, as Captum's (npxai's ``SmoothGrad`` and
    ``NoiseAugmentation`` also take one relative to each sample's range); ``stdevs=0`` gives
    ``m`` clean copies. The noise, the batches and the target are those of
    :mod:`npxai.analyzers.noise`; with that noise, ``NoiseTunnel(Gradient(model), "smoothgrad",
    stdevs=s, seed=seed)`` is ``SmoothGrad(model, sigma=s, seed=seed)``. Captum draws its noise
    with ``torch.normal``, sample-major (its copies are ``x.repeat_interleave(m, 0)``); npxai's
    is copy-major and seeded. Any ``abs`` is the inner analyzer's, applied to each copy before
    combining (Captum's ``Saliency`` takes ``|gradient|`` by default; npxai's ``Gradient`` is
    signed: ``attribute(..., abs=True)`` asks for Captum's). Defaults are Captum's
    (``nt_samples=5``, ``stdevs=1.0``). ``batch_size``: rows (copies of one sample each) per
    call of the inner analyzer. ``progress``: a progress bar over the batches on standard error
    when it is a terminal (:class:`npxai.progress.Progress`), as for the other wrappers.
    """

    def __init__(
        self,
        analyzer: Analyzer,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        stdevs: float = 1.0,
        seed: int | None = None,
        batch_size: int = 32,
        progress: bool = True,
    ):
        super().__init__(analyzer, batch_size, progress)
        if not isinstance(nt_type, str) or nt_type not in NT_TYPES:
            raise ValueError(
                f"NoiseTunnel: unknown nt_type {shown(nt_type)}; choose one of {', '.join(NT_TYPES)}"
            )
        self.nt_type = nt_type
        self.nt_samples = positive_int(nt_samples, "NoiseTunnel: nt_samples")
        self.stdevs = finite_number(stdevs, "NoiseTunnel: stdevs", minimum=0)
        self.seed = optional_seed(seed, "NoiseTunnel: seed")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        return self._tunnel(x, target)

    def _tunnel(self, x: Any, target: Target, attribute: Attribute | None = None) -> Explanation:
        host, m = check_input(to_host(x)), self.nt_samples

        def combine(first: np.ndarray, second: np.ndarray) -> np.ndarray:
            if self.nt_type == "smoothgrad":
                return first / m
            if self.nt_type == "smoothgrad_sq":
                return second / m
            return second / m - (first / m) ** 2

        copies = noisy_copies(np.random.default_rng(self.seed), host, self.stdevs)
        return self.explain(
            x, host, target, np.ones(m), copies, combine, attribute,
            shifted=self.nt_type == "vargrad", nt_type=self.nt_type, nt_samples=m,
            stdevs=self.stdevs,
        )  # fmt: skip

    def attribute(
        self,
        inputs: Any,
        nt_type: str | None = None,
        nt_samples: int | None = None,
        nt_samples_batch_size: int | None = None,
        stdevs: float | None = None,
        draw_baseline_from_distrib: bool = False,
        target: Target = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Captum's ``NoiseTunnel(method).attribute(inputs, nt_type, nt_samples,
        nt_samples_batch_size, stdevs, target=..., **kwargs)``: arguments not given keep this
        wrapper's values; ``nt_samples_batch_size`` is the number of copies of the whole batch per
        call (``batch_size = nt_samples_batch_size * N`` rows); ``kwargs`` go to the inner
        analyzer's ``attribute`` for every batch of copies (``abs=True`` for ``Gradient``,
        Captum's ``Saliency`` default; ``baselines``, ``n_steps``, ``method`` for
        ``IntegratedGradients``). ``draw_baseline_from_distrib=True`` is
        :class:`~npxai.analyzers.gradient_shap.GradientShap`."""
        if draw_baseline_from_distrib is not False:
            raise ValueError(
                "NoiseTunnel.attribute: draw_baseline_from_distrib is GradientShap's "
                "(npxai.analyzers.gradient_shap.GradientShap(model, baselines))"
            )
        inputs = to_numpy(inputs)
        if nt_samples_batch_size is not None:
            nt_samples_batch_size = positive_int(
                nt_samples_batch_size, "NoiseTunnel.attribute: nt_samples_batch_size"
            ) * len(inputs)  # fmt: skip
        tunnel = NoiseTunnel(
            self.analyzer,
            self.nt_type if nt_type is None else nt_type,
            self.nt_samples if nt_samples is None else nt_samples,
            self.stdevs if stdevs is None else stdevs,
            self.seed,
            self.batch_size if nt_samples_batch_size is None else nt_samples_batch_size,
            self.progress,
        )

        def attribute(copies: np.ndarray, targets: np.ndarray) -> np.ndarray:
            return self.analyzer.attribute(copies, target=targets, **kwargs)

        return tunnel._tunnel(inputs, to_numpy(target), attribute).attribution


class NoiseAugmentation(_Wrapper):
    """ExplainableAI.jl's ``NoiseAugmentation(analyzer, n, std)``: ``1/n sum_k A(x + e_k)``,
    ``e_k ~ N(0, sigma^2 I)``, the target chosen on the clean input.

    ``sigma`` is ``std``, the same for every sample (default 1.0, ExplainableAI.jl's), or
    ``noise_level * (max x_n - min x_n)`` per sample ``n`` with ``noise_level`` (Smilkov et al.
    recommend 0.1 to 0.2; ExplainableAI.jl suggests computing such a ``std`` by hand); not both.
    Deliberate differences from ExplainableAI.jl: ``std`` is the standard deviation itself
    (ExplainableAI.jl passes ``std^2`` to ``Normal``, whose second argument is the standard
    deviation, so its noise has standard deviation ``std^2``), and the noise is drawn from
    ``np.random.default_rng(seed)`` as in :mod:`npxai.analyzers.noise` (copies in batches of
    ``batch_size``, where ExplainableAI.jl runs one copy of the batch at a time).
    ``NoiseAugmentation(Gradient(model), n, noise_level=l, seed=s)`` is
    ``SmoothGrad(model, n, l, s)``."""

    def __init__(
        self,
        analyzer: Analyzer,
        n: int = 50,
        std: float | None = None,
        noise_level: float | None = None,
        seed: int | None = None,
        batch_size: int = 32,
        progress: bool = True,
    ):
        super().__init__(analyzer, batch_size, progress)
        self.n = positive_int(n, "NoiseAugmentation: n")
        if std is not None and noise_level is not None:
            raise ValueError(
                "NoiseAugmentation: give std (absolute) or noise_level (relative to each "
                f"sample's range), not both; got std={shown(std)}, noise_level={shown(noise_level)}"
            )
        self.std = None if std is None else finite_number(std, "NoiseAugmentation: std", 0)
        if noise_level is not None:
            noise_level = finite_number(noise_level, "NoiseAugmentation: noise_level", 0)
        elif std is None:
            self.std = 1.0
        self.noise_level, self.seed = noise_level, optional_seed(seed, "NoiseAugmentation: seed")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        host = check_input(to_host(x))
        if self.std is None:
            sigma = noise_scale(host, self.noise_level).astype(host.dtype)
        else:
            sigma = np.full(len(host), self.std, host.dtype)
        copies = noisy_copies(np.random.default_rng(self.seed), host, sigma)
        return self.explain(
            x, host, target, np.ones(self.n), copies, lambda first, second: first / self.n,
            sigma=sigma, n=self.n,
        )  # fmt: skip


class InterpolationAugmentation(_Wrapper):
    """ExplainableAI.jl's ``InterpolationAugmentation(analyzer, n)``: the inner analyzer along the
    straight path from the baseline ``b`` to ``x``, averaged and multiplied by ``x - b``::

        R(x) = (x - b) * sum_k w_k A(b + alpha_k (x - b)),

    ``alpha_k, w_k`` the ``n``-point quadrature ``method`` of
    :func:`~npxai.analyzers.integrated_gradients.quadrature` (weights summing to 1); the target is
    chosen on ``x``. ``InterpolationAugmentation(Gradient(model), n, b, method)`` is
    ``IntegratedGradients(model, n, b, method)`` (as ExplainableAI.jl defines its
    ``IntegratedGradients``). ``baseline`` is a number or an array broadcastable to the input
    (ExplainableAI.jl's ``input_ref``, default zero). The inner analyzer's attribution must
    have the input's shape (not Grad-CAM's or CRP's).

    Deliberate difference: the default ``method="riemann_trapezoid"`` takes ExplainableAI.jl's
    points ``alpha_k = k/(n-1)``, ``k = 0..n-1``, both ends included, with the trapezoid's
    weights (``1/(n-1)``, halved at the ends); ExplainableAI.jl gives each point ``1/n`` (the
    loop of its ``src/input_augmentation.jl``, 2026, also adds an ``(n+1)``-th point,
    ``b + n/(n-1) (x - b)``, past ``x``, before dividing by ``n``). Both need ``n >= 2`` for
    these points."""

    def __init__(
        self,
        analyzer: Analyzer,
        n: int = 50,
        baseline: float | np.ndarray = 0.0,
        method: str = "riemann_trapezoid",
        batch_size: int = 32,
        progress: bool = True,
    ):
        super().__init__(analyzer, batch_size, progress)
        self.n = positive_int(n, "InterpolationAugmentation: n")
        try:
            self.alphas, self.weights = quadrature(method, self.n)
        except ValueError as error:
            raise ValueError(f"InterpolationAugmentation: {error}") from None
        baseline = to_numpy(baseline)
        if (
            isinstance(baseline, str)
            or np.asarray(baseline).dtype.kind not in "biuf"
            or not np.isfinite(np.asarray(baseline)).all()
        ):
            raise ValueError(
                "InterpolationAugmentation: baseline must be a finite number or an array of "
                f"finite numbers broadcastable to the input, got {shown(baseline)}"
            )
        self.baseline, self.method = np.asarray(baseline), method

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        host = check_input(to_host(x))
        try:
            baseline = np.broadcast_to(self.baseline.astype(host.dtype), host.shape)
        except ValueError:
            raise ValueError(
                f"InterpolationAugmentation: baseline of shape {self.baseline.shape} does not "
                f"broadcast to the input {host.shape}"
            ) from None
        alphas = self.alphas.astype(host.dtype).reshape(-1, *(1,) * (host.ndim - 1))
        difference = host - baseline

        def path_points(rows: np.ndarray) -> np.ndarray:  # row r: alpha_{r // N}, sample r % N
            sample = rows % len(host)
            return baseline[sample] + alphas[rows // len(host)] * difference[sample]

        def times_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
            if first.shape != host.shape:
                raise ValueError(
                    f"InterpolationAugmentation: {type(self.analyzer).__name__}'s attribution "
                    f"has shape {first.shape}, not the input's {host.shape}: it cannot be "
                    "multiplied by x - baseline"
                )
            return difference * first

        return self.explain(
            x, host, target, self.weights, path_points, times_difference, method=self.method,
            n=self.n,
        )  # fmt: skip
