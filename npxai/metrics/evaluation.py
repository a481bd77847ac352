"""Methods against metrics: :func:`evaluate` runs every named metric (:data:`METRICS`) on every
method's explanation of a batch and gathers one number per sample, the table that ``npxai
evaluate`` prints, and the perturbation curves it plots.

Each entry of :data:`METRICS` states the settings it runs its metric with (the metric's defaults
unless said), the per-sample number it reports and whether higher is better. The perturbation
metrics get the attribution summed over the channels (one value a pixel, so that a pixel's
channels are perturbed together).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analyzers.base import Target, as_model
from ..checks import optional_seed
from ..gradient import target_indices
from ..module import Module, check_input
from .axioms import completeness
from .base import explain, rows_per_call
from .complexity import complexity, effective_complexity, sparseness
from .correlation import faithfulness_correlation
from .curves import PerturbationCurve
from .faithfulness import (
    RelevanceGain,
    deletion,
    insertion,
    pixel_flipping,
    region_perturbation,
    symmetric_relevance_gain,
)
from .plots import save_curves
from .randomisation import mprt, random_logit
from .road import road
from .robustness import infidelity, sensitivity_max


@dataclass
class Case:
    """What a metric entry runs on: the model, the batch, the targets (indices), one method's
    attribution (as the analyzer gave it, and summed over channels), its explainer and the
    factory that builds it for another model (:func:`npxai.metrics.mprt`), the seed and the batch
    size."""

    model: Module
    x: np.ndarray
    target: np.ndarray
    attribution: np.ndarray
    explainer: Any
    make_explainer: Callable[[Module], Any]
    seed: int | None
    batch_size: int

    @functools.cached_property
    def pixels(self) -> np.ndarray:
        """The attribution summed over the channel axis (axis 1), kept as an axis of 1."""
        return self.attribution.sum(axis=1, keepdims=True)

    @property
    def common(self) -> dict[str, int]:
        """The arguments every model-running metric takes: ``batch_size`` and ``seed``."""
        return {"batch_size": self.batch_size, "seed": self.seed}

    def patch_size(self) -> int:
        """Region perturbation's patch: the shorter side over 28 (8 on 224 x 224 images, Quantus's
        default), at least 1, or 1 where that does not tile the image."""
        side = min(self.x.shape[2:])
        size = max(1, side // 28)
        return size if all(d % size == 0 for d in self.x.shape[2:]) else 1


@dataclass(frozen=True)
class Metric:
    """One column of the table: ``run(case)`` the metric's result, ``value(result)`` its number
    per sample ``(N,)``, ``higher_is_better`` its direction, ``settings`` what it runs with,
    ``curve(result)`` the curves to plot (``{label: (x values, scores (N, S))}``) or none."""

    run: Callable[[Case], Any]
    value: Callable[[Any], np.ndarray]
    higher_is_better: bool
    settings: str
    curve: Callable[[Any], dict[str, tuple[np.ndarray, np.ndarray]]] | None = None
    xlabel: str = "fraction of pixels perturbed"
    ylabel: str = "explained probability"


def _curve(result: PerturbationCurve) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"": (result.fractions, result.scores)}


def _gain_curves(result: RelevanceGain) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {f" ({c.order})": (c.fractions, c.scores) for c in (result.morf, result.lerf)}


def _score(result: Any) -> np.ndarray:
    return result.score


def _same(result: np.ndarray) -> np.ndarray:
    return result


ROAD_PERCENTAGES = tuple(range(10, 100, 10))


def _pixel_flipping(c: Case) -> PerturbationCurve:
    steps = min(100, c.pixels[0].size)
    return pixel_flipping(c.model, c.x, c.pixels, c.target, steps=steps, **c.common)


def _region_perturbation(c: Case) -> PerturbationCurve:
    return region_perturbation(c.model, c.x, c.pixels, c.target, patch_size=c.patch_size(),
                               **c.common)  # fmt: skip


def _faithfulness_correlation(c: Case) -> np.ndarray:
    subset_size = min(224, c.pixels[0].size // 4)
    return faithfulness_correlation(c.model, c.x, c.pixels, c.target, subset_size=subset_size,
                                    softmax=True, **c.common)  # fmt: skip


#: The metrics of ``npxai evaluate`` by name (see the module).
METRICS: dict[str, Metric] = {
    "pixel-flipping": Metric(
        _pixel_flipping, _score, False,
        "100 steps (at most a pixel each), imputer black, most relevant first; AUC", _curve,
    ),
    "region-perturbation": Metric(
        _region_perturbation, _score, True,
        "patches of 8 x 8 on 224 x 224 images, 100 regions, imputer uniform; AOPC", _curve,
    ),
    "deletion": Metric(
        lambda c: deletion(c.model, c.x, c.pixels, c.target, **c.common), _score, False,
        "100 steps (at most a pixel each), imputer 0; AUC", _curve,
    ),
    "insertion": Metric(
        lambda c: insertion(c.model, c.x, c.pixels, c.target, **c.common), _score, True,
        "100 steps (at most a pixel each) from the blurred image; AUC", _curve,
        "fraction of pixels inserted",
    ),
    "srg": Metric(
        lambda c: symmetric_relevance_gain(c.model, c.x, c.pixels, c.target, **c.common),
        _score, True,
        "100 steps (at most a pixel each) each way, imputer mean; AUC(lerf) - AUC(morf)",
        _gain_curves,
    ),
    "road": Metric(
        lambda c: road(c.model, c.x, c.pixels, c.target, percentages=ROAD_PERCENTAGES,
                       **c.common),
        lambda r: r.mean(axis=1), False,
        "10, 20, .., 90 % removed most relevant first, noisy linear imputation; mean accuracy",
        lambda r: {"": (np.array(ROAD_PERCENTAGES) / 100, r)}, "fraction of pixels removed",
        "target still predicted",
    ),
    "faithfulness-correlation": Metric(
        _faithfulness_correlation, _same, True,
        "100 subsets of 224 pixels (a quarter of smaller images), imputer black, probabilities",
    ),
    "infidelity": Metric(
        lambda c: infidelity(c.model, c.x, c.attribution, c.target, **c.common), _same, False,
        "10 Gaussian perturbations of stdev 0.003, logits",
    ),
    "sensitivity-max": Metric(
        lambda c: sensitivity_max(c.model, c.x, c.explainer, c.target, **c.common), _same,
        False, "10 inputs in the L-inf ball of radius 0.02",
    ),
    "mprt": Metric(
        lambda c: mprt(c.model, c.x, c.make_explainer, c.target, **c.common),
        lambda r: r.last, False,
        "cascading from the output layer, Spearman; the similarity after the last layer",
        lambda r: {"": (np.arange(1, len(r.layers) + 1), r.scores)}, "layers randomised",
        "Spearman similarity",
    ),
    "random-logit": Metric(
        lambda c: random_logit(c.model, c.x, c.explainer, c.target, **c.common), _same, False,
        "one random other class, SSIM",
    ),
    "sparseness": Metric(
        lambda c: sparseness(None, c.x, c.attribution), _same, True, "Gini index of |a|",
    ),
    "complexity": Metric(
        lambda c: complexity(None, c.x, c.attribution), _same, False,
        "entropy of |a| / sum |a|",
    ),
    "effective-complexity": Metric(
        lambda c: effective_complexity(None, c.x, c.attribution), _same, False,
        "entries with |a| / max |a| > 1e-5",
    ),
    "completeness": Metric(
        lambda c: np.abs(completeness(c.model, c.x, c.attribution, c.target,
                                      batch_size=c.batch_size)),
        _same, False, "|sum a - (f(x) - f(0))|, logits",
    ),
}  # fmt: skip

#: What ``npxai evaluate`` runs without ``--metric``: the cheap ones.
DEFAULT_METRICS = ("deletion", "insertion", "sparseness", "complexity")


def metric_names(names: Sequence[str]) -> list[str]:
    """``names`` (each may be comma-separated, ``"all"`` for every metric; case, ``-`` and ``_``
    ignored) as keys of :data:`METRICS`, in order, each once; an unknown name is a
    ``ValueError`` listing the metrics."""
    keys = {key.replace("-", ""): key for key in METRICS}
    chosen: list[str] = []
    for name in names:
        for part in name.split(","):
            part = part.strip().lower().replace("-", "").replace("_", "")
            if part == "all":
                found = list(METRICS)
            elif part in keys:
                found = [keys[part]]
            else:
                raise ValueError(f"unknown metric {part!r}; the metrics: {', '.join(METRICS)}")
            chosen += [key for key in found if key not in chosen]
    return chosen


@dataclass
class Evaluation:
    """What :func:`evaluate` found: ``values[method][metric]`` the numbers per sample ``(N,)``,
    ``results[method][metric]`` each metric's full result (curves included)."""

    methods: list[str]
    metrics: list[str]
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> str:
        """Methods against metrics, each cell the mean over the samples, as a Markdown table;
        the second row says which direction is better."""
        head = ["method", *self.metrics]
        better = ["", *("higher better" if METRICS[m].higher_is_better else "lower better"
                        for m in self.metrics)]  # fmt: skip
        rows = [[method, *(f"{np.mean(self.values[method][m]):.4g}" for m in self.metrics)]
                for method in self.methods]  # fmt: skip
        widths = [max(len(row[i]) for row in [head, better, *rows]) for i in range(len(head))]
        lines = [head, better, *rows]
        text = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
                for r in lines]  # fmt: skip
        text.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(text)

    def save_curves(self, folder: str | os.PathLike) -> list[Path]:
        """One PNG per metric with curves, ``curves_<metric>.png`` in ``folder``: the mean curve
        over the samples of each method, method beside method. Returns the paths written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in self.metrics:
            metric = METRICS[name]
            if metric.curve is None:
                continue
            lines = {}
            for method in self.methods:
                for label, (xs, ys) in metric.curve(self.results[method][name]).items():
                    lines[method + label] = (xs, ys.mean(axis=0))
            path = folder / f"curves_{name}.png"
            save_curves(lines, path, f"{name}: {metric.settings}", metric.xlabel, metric.ylabel)
            written.append(path)
        return written


def evaluate(
    model: Any,
    x: Any,
    explainers: Mapping[str, Callable[[Module], Any]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    target: Target = None,
    *,
    seed: int | None = 0,
    batch_size: int | None = None,
    progress: Callable[[str, str, float], None] | None = None,
) -> Evaluation:
    """Each method of ``explainers`` (a name and its factory ``make(model) -> analyzer``, e.g.
    ``{"Gradient": npxai.Gradient}``) explains ``x`` for ``target`` (default: the arg-max class)
    once; each metric of ``metrics`` (names of :data:`METRICS`) then measures that explanation.
    The metrics' random parts use ``seed``; ``batch_size`` rows go through the model per call.
    ``progress(method, metric, seconds)`` is called after each metric."""
    model = as_model(model)
    x = check_input(x)
    names = metric_names(metrics)
    seed = optional_seed(seed, "evaluate: seed")
    batch_size = rows_per_call(batch_size, x, "evaluate")
    indices = target_indices(model(x), target)
    evaluation = Evaluation(list(explainers), names)
    for method, make in explainers.items():
        explainer = make(model)
        attribution = explain(explainer, x, indices, f"evaluate: {method}")
        case = Case(model, x, indices, attribution, explainer, make, seed, batch_size)
        values, results = {}, {}
        evaluation.values[method], evaluation.results[method] = values, results
        for name in names:
            start = time.perf_counter()
            results[name] = METRICS[name].run(case)
            values[name] = np.asarray(METRICS[name].value(results[name]), dtype=np.float64)
            if progress is not None:
                progress(method, name, time.perf_counter() - start)
    return evaluation
