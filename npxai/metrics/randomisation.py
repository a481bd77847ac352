"""Randomisation tests (sanity checks): does the explanation change when what it should depend on
changes?

- :func:`mprt`: the model parameter randomisation test (Adebayo et al., "Sanity Checks for
  Saliency Maps", NeurIPS 2018; Quantus's ``MPRT``): the explanation of the trained model against
  the explanations of models whose layers' parameters are re-initialised, cascading from the
  output down or one layer at a time. An explanation that stays similar does not depend on what
  the model learned (an edge detector passes every layer at similarity 1);
- :func:`random_logit`: the random logit test (Sixt et al., "When Explanations Lie", ICML 2020;
  Quantus's ``RandomLogit``): the explanation of the target class against that of a randomly
  drawn other class. An explanation that stays similar does not depend on the class explained.

Lower similarity is better in both.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analyzers.base import Analyzer, Target, as_model
from ..checks import flag, optional_seed, shown
from ..layers import Conv2d, Linear, RMSNorm, _BatchNorm, _LayerNorm
from ..module import Layer, Module
from .base import check_choice, explain, prepare
from .similarity import hog_similarity, spearman, ssim

#: ``similarity(a, b) -> (N,)`` comparing two batches of explanations sample by sample.
Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]


def flattened(measure: Similarity) -> Similarity:
    """``measure`` of the samples flattened to ``(N, F)``, as Quantus hands them to its
    ``similarity_func``."""
    return lambda a, b: measure(a.reshape(len(a), -1), b.reshape(len(b), -1))


#: The named similarities: Spearman's rank correlation and SSIM as Quantus's randomisation
#: metrics compute them (of the flattened explanations, so SSIM's window of 7 slides along the
#: row-major order), and the HOG similarity of the 2-D maps (:mod:`npxai.metrics.similarity`).
SIMILARITIES: dict[str, Similarity] = {
    "spearman": flattened(spearman),
    "ssim": flattened(ssim),
    "hog": hog_similarity,
}


def similarity_function(similarity: Any, owner: str) -> Similarity:
    """A name of :data:`SIMILARITIES` as its function, a callable as it is, else an error."""
    if callable(similarity):
        return similarity
    return SIMILARITIES[check_choice(similarity, tuple(SIMILARITIES), f"{owner}: similarity")]


def compare(similarity: Similarity, a: np.ndarray, b: np.ndarray, owner: str) -> np.ndarray:
    """``similarity(a, b)`` as float64 ``(N,)``, else ``ValueError`` naming ``similarity``."""
    scores = np.asarray(similarity(a, b), np.float64)
    if scores.shape != (len(a),):
        raise ValueError(
            f"{owner}: similarity must return one value per sample, shape ({len(a)},), got "
            f"{scores.shape}"
        )
    return scores


def preprocessed(attribution: np.ndarray, normalise: bool, absolute: bool) -> np.ndarray:
    """Quantus's explanation preprocessing, per sample: ``a / max |a|`` (``normalise``; a sample
    of zeros stays zero), then ``|a|`` (``absolute``)."""
    if normalise:
        axes = tuple(range(1, attribution.ndim))
        peak = np.abs(attribution).max(axis=axes, keepdims=True)
        attribution = attribution / np.where(peak > 0, peak, 1.0)
    return np.abs(attribution) if absolute else attribution


def reinitialised(layer: Layer, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """New values of ``layer``'s parameters and buffers as torch's ``reset_parameters`` makes
    them: a Linear or Conv2d weight and bias each ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, drawn
    from ``rng``, weight first: ``2 bound u - bound``, ``u = rng.random(shape, dtype)`` in float32
    for a float32 parameter, else in float64 (then cast to the parameter's dtype); a batch
    norm's weight 1, bias 0, running mean 0 and running variance 1; a layer norm's (and an RMS
    norm's) weight 1 and bias 0."""
    state = layer.state_dict()
    if isinstance(layer, Linear | Conv2d):
        values = {}
        for name, value in state.items():
            bound = value.dtype.type(1 / math.sqrt(math.prod(state["weight"].shape[1:])))
            draw = rng.random(value.shape, np.float32 if value.dtype == np.float32 else np.float64)
            draw *= 2 * bound
            draw -= bound
            values[name] = draw.astype(value.dtype, copy=False)
        return values
    ones = {"weight", "running_var"}
    return {name: np.full_like(value, 1 if name in ones else 0) for name, value in state.items()}


def randomisable_layers(model: Module, owner: str) -> list[str]:
    """The keys of ``model``'s layers that a randomisation re-initialises, in ``named_modules``
    order: those torch gives a ``reset_parameters`` (Linear, Conv2d, batch norms, layer norms,
    RMS norms). Another layer with parameters, or none to randomise, is a ``ValueError``."""
    keys = []
    for key, module in model.named_modules():
        if isinstance(module, Linear | Conv2d | _BatchNorm | _LayerNorm | RMSNorm):
            keys.append(key)
        elif isinstance(module, Layer) and any(True for _ in module.named_parameters()):
            raise ValueError(
                f"{owner}: cannot randomise layer {key!r} ({type(module).__name__}); the "
                "randomisable layers are Linear, Conv2d and the batch, layer and RMS norms"
            )
    if not keys:
        raise ValueError(f"{owner}: the model has no layer with parameters to randomise")
    return keys


@dataclass
class MPRTResult:
    """What :func:`mprt` returns: ``layers`` the keys of the randomised layers in randomisation
    order, ``scores[n, l]`` the similarity of sample ``n``'s explanation with its explanation
    after step ``l`` (``(N, L)``; with ``skip_layers`` only the last step, ``(N, 1)``), and
    ``original`` the similarity with a second explanation of the unchanged model (1 for a
    deterministic explainer; Quantus's ``"original"`` entry)."""

    layers: list[str]
    scores: np.ndarray
    original: np.ndarray

    @property
    def last(self) -> np.ndarray:
        """``scores[:, -1]``, per sample: the fully randomised model for ``"top_down"``
        (Quantus's ``return_last_correlation=True``)."""
        return self.scores[:, -1]

    @property
    def average(self) -> np.ndarray:
        """The mean over the layers, per sample. Quantus's ``return_average_correlation=True``
        includes the ``"original"`` entry in its mean (it skips a key ``"orig"`` that its results
        never hold): it is ``(original + L average) / (L + 1)``."""
        return self.scores.mean(axis=1)

    def as_dict(self) -> dict[str, np.ndarray]:
        """Quantus's result: ``{"original": ..., layer: scores, ...}`` in randomisation order."""
        return {"original": self.original} | dict(zip(self.layers, self.scores.T, strict=True))


def explain_batches(
    explainer: Any, x: np.ndarray, target: np.ndarray, batch_size: int, owner: str
) -> np.ndarray:
    """The attribution of ``x`` for ``target``, ``batch_size`` samples per explainer call."""
    parts = [
        explain(explainer, x[start : start + batch_size], target[start : start + batch_size], owner)
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts)


def mprt(
    model: Any,
    x: Any,
    explainer: Callable[[Module], Any],
    target: Target = None,
    *,
    layer_order: str = "top_down",
    similarity: str | Similarity = "spearman",
    skip_layers: bool = False,
    abs: bool = True,
    normalise: bool = True,
    seed: int | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
) -> MPRTResult:
    """The model parameter randomisation test (Adebayo et al. 2018; Quantus's ``MPRT``).

    With ``e(f)`` the explanation of ``x_n`` for target ``t_n`` under model ``f`` (preprocessed:
    ``e / max |e|`` per sample if ``normalise``, then ``|e|`` if ``abs``; Quantus's defaults) and
    ``f_l`` the model after randomisation step ``l``::

        scores[n, l] = similarity(e(f)_n, e(f_l)_n)

    The randomised layers are the model's Linear, Conv2d and normalisation layers (those torch
    gives a ``reset_parameters``, which Quantus calls), in the order of ``model.named_modules()``;
    step ``l`` re-initialises layer ``l`` of that list reversed (``layer_order="top_down"``, the
    output layer first: cascading, each step keeping the previous steps' randomisation) or of the
    list itself, from the original model each time (``"independent"``). Re-initialised means as
    torch's ``reset_parameters`` (:func:`reinitialised`): affine weights and biases
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, drawn from ``np.random.default_rng(seed)`` in step
    order; normalisation layers reset to the identity. The targets are fixed by the original
    model (``None``: its arg-max). The caller's model is never changed: the steps run on a copy.

    ``explainer(model) -> analyzer`` builds the explainer of a model, called once for the
    original model and once per step: an analyzer class (``npxai.Gradient``), a
    ``functools.partial(npxai.LRP, composite=...)``, or any function returning an analyzer or
    an ``explain(x, target)`` callable (see :mod:`npxai.metrics.base`). An analyzer instance is
    refused: it is bound to one model, and analyzers may hold model-dependent state (LRP explains
    a canonized copy of its model), so swapping its ``model`` would be unsafe.

    ``similarity``: ``"spearman"`` (Quantus's default), ``"ssim"`` (both of the flattened
    explanations, as Quantus's MPRT hands them to its similarity function: SSIM's window slides
    along the row-major order), ``"hog"`` (:func:`~npxai.metrics.similarity.hog_similarity` of
    2-D maps), or a callable ``similarity(a, b) -> (N,)`` given the explanations ``(N, *a)``
    unflattened (:func:`npxai.metrics.similarity.ssim` gives the 2-D SSIM of the paper).
    ``skip_layers``: compare only after the last step (Quantus's ``skip_layers``).
    The explainer runs on ``batch_size`` samples at a time.

    Returns an :class:`MPRTResult` (``layers``, ``scores``, ``original``, ``last``, ``average``,
    ``as_dict()``).

    Differences from Quantus: the normalisation is per sample (Quantus divides by the maximum
    over each batch of ``batch_size`` explanations, so its SSIM depends on the batch size; its
    Spearman does not); the draws come from NumPy (Quantus reseeds torch with ``seed + 1`` before
    every layer, so same-shaped layers get the same values), ``seed=None`` (npxai's convention)
    draws fresh ones where Quantus defaults to 42; ``average`` leaves out ``original`` (see
    :attr:`MPRTResult.average`); Quantus's "bottom_up" order is not offered (its docstring
    mentions it, its checks refuse it).
    """
    owner = "mprt"
    layer_order = check_choice(layer_order, ("top_down", "independent"), f"{owner}: layer_order")
    measure = similarity_function(similarity, owner)
    skip_layers = flag(skip_layers, f"{owner}: skip_layers")
    absolute = flag(abs, f"{owner}: abs")
    normalise = flag(normalise, f"{owner}: normalise")
    rng = np.random.default_rng(optional_seed(seed, f"{owner}: seed"))
    if isinstance(explainer, Analyzer) or not callable(explainer):
        raise TypeError(
            f"{owner}: explainer must build the explainer of a model, explainer(model) -> "
            "analyzer, e.g. npxai.Gradient or functools.partial(npxai.LRP, composite=...); got "
            f"{shown(explainer)}"
        )
    torch = sys.modules.get("torch")  # a torch module exists only once torch is imported
    if not (isinstance(model, Module) or (torch and isinstance(model, torch.nn.Module))):
        raise TypeError(
            f"{owner}: model must be an npxai Module or a torch.nn.Module (a model whose "
            f"parameters can be randomised), got {type(model).__name__}"
        )
    model = as_model(model)
    keys = randomisable_layers(model, owner)
    inputs = prepare(owner, model, x, None, target, batch_size, backend=backend,
                     needs_attribution=False)  # fmt: skip

    def explanation(of: Module) -> np.ndarray:
        attribution = explain_batches(
            explainer(of), inputs.x, inputs.target, inputs.batch_size, owner
        )
        return preprocessed(attribution, normalise, absolute)

    reference = explanation(model)
    original = compare(measure, reference, explanation(model), owner)
    order = keys[::-1] if layer_order == "top_down" else keys
    # the model's tree copied, its arrays shared: a step replaces a layer's arrays, never writes
    # into them
    randomised = copy.deepcopy(model, {id(v): v for v in model.state_dict().values()})
    layers = dict(randomised.named_modules())
    scores = []
    for step, key in enumerate(order):
        layer = layers[key]
        saved = layer.state_dict() if layer_order == "independent" else {}
        for name, value in reinitialised(layer, rng).items():
            setattr(layer, name, value)  # a new array: the saved (the caller's) ones are kept
        if not skip_layers or step == len(order) - 1:
            scores.append(compare(measure, reference, explanation(randomised), owner))
        for name, value in saved.items():
            setattr(layer, name, value)
    shown_layers = order[-1:] if skip_layers else order
    return MPRTResult(shown_layers, np.stack(scores, axis=1), original)


def random_logit(
    model: Any,
    x: Any,
    explainer: Any,
    target: Target = None,
    *,
    similarity: str | Similarity = "ssim",
    abs: bool = False,
    normalise: bool = True,
    seed: int | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """The random logit test (Sixt et al. 2020; Quantus's ``RandomLogit``): per sample ``n``::

        score_n = similarity(e(x_n, t_n), e(x_n, o_n)),   o_n ~ U({0, ..., K-1} \\ {t_n})

    ``e`` the explanation (preprocessed as Quantus: ``e / max |e|`` per sample if ``normalise``,
    then ``|e|`` if ``abs``; Quantus's defaults normalise without ``abs``), ``K`` the model's
    number of outputs. The other class is drawn as Quantus draws it: ``j_n`` uniform in ``{0,
    ..., K-2}`` (``np.random.default_rng(seed).integers(0, K - 1, N)``), ``o_n`` the ``j_n``-th of
    the other classes in increasing order (``j_n + (j_n >= t_n)``).

    ``explainer``: an analyzer of ``model`` or any ``explain(x, target)`` callable (see
    :mod:`npxai.metrics.base`), run ``batch_size`` samples at a time; ``target``: class indices
    (``None``: the arg-max). ``similarity`` as for :func:`mprt` (default ``"ssim"`` of the
    flattened explanations, Quantus's default and its way). Returns ``(N,)``.

    Differences from Quantus: the number of classes is the model's output width (Quantus takes
    ``num_classes``, default 1000); the normalisation is per sample (Quantus's is over each batch
    of explanations); the draw comes from ``np.random.default_rng(seed)`` (Quantus reseeds
    ``np.random`` with its ``seed=42`` for every batch, so each batch draws the same offsets).
    """
    owner = "random_logit"
    measure = similarity_function(similarity, owner)
    absolute = flag(abs, f"{owner}: abs")
    normalise = flag(normalise, f"{owner}: normalise")
    rng = np.random.default_rng(optional_seed(seed, f"{owner}: seed"))
    if not callable(explainer):
        raise TypeError(
            f"{owner}: explainer must be an analyzer or a callable explain(x, target), got "
            f"{shown(explainer)}"
        )
    inputs = prepare(owner, model, x, None, target, batch_size, backend=backend,
                     needs_attribution=False)  # fmt: skip
    classes = inputs.output.shape[1]
    if inputs.target.ndim != 1:
        raise ValueError(f"{owner}: target must be class indices, not per-class weights")
    if classes < 2:
        raise ValueError(f"{owner}: the model must have at least 2 outputs, got {classes}")
    offsets = rng.integers(0, classes - 1, len(inputs.x))
    other = offsets + (offsets >= inputs.target)
    a = explain_batches(explainer, inputs.x, inputs.target, inputs.batch_size, owner)
    b = explain_batches(explainer, inputs.x, other, inputs.batch_size, owner)
    a, b = (preprocessed(e, normalise, absolute) for e in (a, b))
    return compare(measure, a, b, owner)
