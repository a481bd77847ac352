"""Infidelity and max-sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of
Explanations"), as Captum 0.9.0's ``captum.metrics.infidelity`` and ``sensitivity_max`` define
them: how far the attribution's prediction of an output change under input perturbations is off,
and how much an explanation changes under small input perturbations."""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np

from ..analyzers.base import Target
from ..checks import finite_number, flag, optional_seed, positive_int, shown
from .base import Attribution, explain, prepare

#: ``perturb(x (R, *sample) float64, rng) -> (I, x_perturbed)``, both ``(R, *sample)``.
Perturbation = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def infidelity(
    model: Any,
    x: Any,
    attribution: Attribution,
    target: Target = None,
    *,
    perturbation: str | Perturbation = "gaussian",
    stdev: float = 0.003,
    n_perturb_samples: int = 10,
    normalize: bool = False,
    seed: int | None = None,
    batch_size: int | None = None,
    softmax: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """Infidelity per sample, ``(N,)``::

        INFD(Phi, f, x) = E_{I ~ mu_I} [ (I^T Phi(f, x) - (f(x) - f(x - I)))^2 ],

    estimated as the mean over ``n_perturb_samples`` perturbations ``I``, ``f`` the explained
    output (``softmax=True``: of the probabilities), ``Phi`` the attribution (broadcast to the
    input: a channel-summed map multiplies every channel's ``I``). With ``normalize=True`` the
    attribution is first scaled by ``beta = E[I^T Phi (f(x) - f(x - I))] / E[(I^T Phi)^2]`` (1
    when the denominator is 0), making the value invariant to scaling the attribution: ``E[(beta
    I^T Phi - (f(x) - f(x - I)))^2]``.

    ``perturbation``: ``"gaussian"``, ``I = stdev * z``, ``z ~ N(0, 1)`` entrywise, ``x - I`` the
    perturbed input; or ``perturb(x_rows, rng) -> (I, x_perturbed)`` (Captum's ``perturb_func``,
    given a generator too), called once per batch of rows. Row ``r = n * n_perturb_samples + s``
    is perturbation ``s`` of sample ``n`` (Captum's order); ``rng = np.random.default_rng(seed)``
    draws the rows in that order (``"gaussian"``: ``rng.standard_normal`` of each batch's rows,
    the same stream whatever ``batch_size``). The perturbed inputs run ``batch_size`` rows per
    model call.

    Captum has no default perturbation (``perturb_func`` is required); ``stdev = 0.003`` is its
    docstring's example. For float32 inputs ``x - I`` is rounded to float32 before the model
    runs, ``I^T Phi`` is not. Captum requires an attribution of the input's shape and its forward
    function's raw output (here ``softmax=False`` by default); it computes the normalised value
    by its polynomial expansion, here directly. Quantus's ``Infidelity`` is another estimator
    (patches replaced by a baseline), not this one.
    """
    owner = "infidelity"
    perturb = perturbation_function(perturbation, stdev, owner)
    n_perturb_samples = positive_int(n_perturb_samples, f"{owner}: n_perturb_samples")
    normalize = flag(normalize, f"{owner}: normalize")
    seed = optional_seed(seed, f"{owner}: seed")
    inputs = prepare(
        owner,
        model,
        x,
        attribution,
        target,
        batch_size=batch_size,
        softmax=softmax,
        backend=backend,
    )
    x, attribution = inputs.x, inputs.attribution
    n, sample_axes = len(x), tuple(range(1, x.ndim))
    rng = np.random.default_rng(seed)
    dots = np.empty(n * n_perturb_samples)

    def make_rows(rows: np.ndarray) -> np.ndarray:
        samples = rows // n_perturb_samples
        perturbation, perturbed = perturb(x[samples].astype(np.float64), rng)
        expected = (len(rows), *x.shape[1:])
        if np.shape(perturbation) != expected or np.shape(perturbed) != expected:
            raise ValueError(
                f"{owner}: perturbation must return (I, x_perturbed) of the rows' shape "
                f"{expected}, got {np.shape(perturbation)} and {np.shape(perturbed)}"
            )
        dots[rows] = (attribution[samples] * perturbation).sum(axis=sample_axes)
        return np.asarray(perturbed)

    samples = np.repeat(np.arange(n), n_perturb_samples)
    drops = (inputs.full[samples] - inputs.evaluate(make_rows, samples)).reshape(n, -1)
    dots = dots.reshape(n, -1)
    if normalize:
        squares = (dots * dots).sum(axis=1, keepdims=True)
        dots = dots * (dots * drops).sum(axis=1, keepdims=True) / np.where(squares, squares, 1.0)
    return ((dots - drops) ** 2).mean(axis=1)


def perturbation_function(perturbation: Any, stdev: Any, owner: str) -> Perturbation:
    """``perturbation`` (``"gaussian"`` or a function) as ``perturb(x, rng) -> (I, x - I)``."""
    stdev = finite_number(stdev, f"{owner}: stdev", minimum=0)
    if callable(perturbation):
        return perturbation
    if perturbation == "gaussian":

        def gaussian(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            noise = stdev * rng.standard_normal(x.shape)
            return noise, x - noise

        return gaussian
    raise ValueError(
        f"{owner}: perturbation must be 'gaussian' or a function perturb(x, rng) -> (I, "
        f"x_perturbed), got {shown(perturbation)}"
    )


def sensitivity_max(
    model: Any,
    x: Any,
    explainer: Callable[..., Any],
    target: Target = None,
    *,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: str | float = "fro",
    perturb_func: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Max-sensitivity per sample, ``(N,)``::

        SENS_MAX(Phi, f, x, r) = max_{||y - x||_inf <= r} ||Phi(f, y) - Phi(f, x)|| / ||Phi(f, x)||,

    the maximum over ``n_perturb_samples`` inputs ``y = x + u``, ``u ~ U(-r, r)`` entrywise (``r
    = perturb_radius``), of the explanation's change relative to the norm of the explanation of
    ``x`` (Captum's definition; a zero norm counts as 1), the norm ``norm_ord`` of the flattened
    explanation: ``"fro"`` (Euclidean) or an order ``p >= 1`` (``math.inf`` the largest
    magnitude). ``explainer(x, target)`` (an analyzer, e.g. ``npxai.Gradient(model)``) explains
    ``x`` and every ``y`` for the targets of ``x``, ``batch_size`` rows per call.

    ``perturb_func(x_rows, rng) -> y_rows`` replaces the uniform draw (Captum's argument, given a
    generator too), called once per batch of rows. Row ``r = n * n_perturb_samples + s`` is
    perturbation ``s`` of sample ``n`` (Captum's order), drawn by ``rng =
    np.random.default_rng(seed)`` in that order (the same stream whatever ``batch_size``).
    Defaults are Captum 0.9.0's; Captum draws ``u`` in float32 with torch's global generator.
    Quantus 0.6.0's ``MaxSensitivity`` (``norm_numerator`` and ``norm_denominator`` Frobenius,
    ``normalise=False``) is the same quantity, equal given the same ``u``, with other defaults:
    ``nr_samples=200`` perturbations of radius ``lower_bound=0.2``, and no guard against a zero
    norm (its ratio is then NaN or infinite).
    """
    owner = "sensitivity_max"
    radius = finite_number(perturb_radius, f"{owner}: perturb_radius", minimum=0)
    n_perturb_samples = positive_int(n_perturb_samples, f"{owner}: n_perturb_samples")
    order = norm_order(norm_ord, owner)
    seed = optional_seed(seed, f"{owner}: seed")
    if not callable(explainer):
        raise TypeError(
            f"{owner}: explainer must be an analyzer or a function explain(x, target), got "
            f"{shown(explainer)}"
        )
    if perturb_func is None:

        def perturb_func(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return x + rng.uniform(-radius, radius, x.shape)

    inputs = prepare(owner, model, x, explainer, target, batch_size=batch_size, backend=backend)
    x, target = inputs.x, inputs.target
    n = len(x)
    rows = n * n_perturb_samples
    original = inputs.attribution.reshape(n, -1)
    scale = np.linalg.norm(original, ord=order, axis=1)
    scale = np.where(scale == 0, 1.0, scale)
    rng = np.random.default_rng(seed)
    ratios = np.empty(rows)
    for start in range(0, rows, inputs.batch_size):
        batch = np.arange(start, min(start + inputs.batch_size, rows))
        samples = batch // n_perturb_samples
        perturbed = np.asarray(perturb_func(x[samples].astype(np.float64), rng))
        if perturbed.shape != (len(batch), *x.shape[1:]):
            raise ValueError(
                f"{owner}: perturb_func must return the rows' shape {(len(batch), *x.shape[1:])}, "
                f"got {perturbed.shape}"
            )
        explained = explain(explainer, perturbed.astype(x.dtype), target[samples], owner)
        change = np.broadcast_to(explained, (len(batch), *inputs.attribution.shape[1:]))
        change = change.reshape(len(batch), -1) - original[samples]
        ratios[batch] = np.linalg.norm(change, ord=order, axis=1) / scale[samples]
    return ratios.reshape(n, n_perturb_samples).max(axis=1)


def norm_order(value: Any, owner: str) -> float:
    """``norm_ord`` as the ``ord`` of :func:`numpy.linalg.norm` for vectors: ``"fro"`` is 2."""
    if isinstance(value, str) and value == "fro":
        return 2.0
    if (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and (value >= 1 or value == math.inf)
    ):
        return float(value)
    raise ValueError(f"{owner}: norm_ord must be 'fro' or a number p >= 1, got {shown(value)}")
