"""The suite's cases: what is explained, by which method, in which library's convention.

A case is one explanation of one model's input batch: an LRP rule map (every layer's rule) or a
gradient-family analyzer, in one *convention*, the formulas of one library:

- ``npxai``: npxai's own rules and defaults (:mod:`npxai.lrp.rules`, :mod:`npxai.composites`);
- ``zennit``: what Zennit 0.5.1 computes (:mod:`npxai.compat.zennit`);
- ``captum``: what Captum 0.9's ``LRP`` and attribution methods compute (:mod:`npxai.compat.captum`);
- ``julia``: what RelevancePropagation.jl 3 computes (:mod:`npxai.compat.julia`).

Cases that explain the same thing under each convention's name share a *family* (``conv/gamma/
mixed``: the conv model's ``mixed`` input with each library's "gamma" rule on its dense and
convolutional layers); a case is named ``family@convention``. A family exists in a convention
only where that library has the method (Captum has no Flat rule, no preset but its default map).

The rule-grid families put one rule (``zero``, ``epsilon``, ``gamma``, ``generalized_gamma``,
``zplus``, ``alpha1beta0``, ``alpha2beta1``, ``wsquare``, ``flat``; ``zbox`` on the first layer
with ``epsilon`` on the others) on every dense and convolutional layer, and give every other
layer the convention's own choice; the preset families run each library's named composites
(``preset/EpsilonPlus``), ``lrp_default`` what ``LRP(model)`` computes in that library; the
gradient families run ``gradient``, ``input_times_gradient``, ``integrated_gradients/<quadrature>``,
``smoothgrad`` (its noise stored with the inputs) and ``gradcam``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import layers as L
from ..analyzers import (
    LRP,
    GradCAM,
    Gradient,
    InputTimesGradient,
    IntegratedGradients,
    SmoothGrad,
)
from ..analyzers.integrated_gradients import CAPTUM_METHODS, QUADRATURES
from ..compat import captum, julia, zennit
from ..containers import Graph
from ..lrp import composites as npxai_presets
from ..lrp import rules as R
from ..lrp.composites import ByType, Composite, FirstOfType
from ..lrp.kinds import PARAMETRIC
from .models import MODELS, Model, build

CONVENTIONS = ("npxai", "zennit", "captum", "julia")

#: ZBox's bounds; the inputs are clipped to them.
LOW, HIGH = -3.0, 3.0

#: The largest relative difference (see :func:`npxai.conformance.checker.relative_difference`) a
#: case allows: float64 round-off, and Captum's float32 quadrature steps.
TOLERANCE = 1e-9
CAPTUM_QUADRATURE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Case:
    """One case. ``method`` is ``"LRP"`` or an analyzer's name; for LRP, ``composite`` is the
    npxai composite that computes the convention's rule map, ``batch_norm`` says what is done
    to batch norms first (``"folded"``: folded exactly, :func:`npxai.canonize`; ``"zennit"``:
    folded as Zennit's ``MergeBatchNorm``, ``x / sqrt(1 + eps)`` left behind; ``"unfolded"``:
    kept, under their own rule) and ``output_relevance`` where the relevance starts (``"one"`` or
    ``"logit"``). ``parameters`` are the analyzer's arguments (npxai's names); ``absolute`` takes
    the absolute value of the attribution (Captum's ``Saliency`` default). ``peer`` tells the
    convention's library what to run, in its own names (the manifest's ``peer`` entry)."""

    family: str
    convention: str
    model: str
    input: str
    method: str
    peer: dict
    composite: Composite | None = None
    batch_norm: str = "folded"
    output_relevance: str = "one"
    parameters: dict = field(default_factory=dict)
    absolute: bool = False
    tolerance: float = TOLERANCE

    @property
    def name(self) -> str:
        return f"{self.family}@{self.convention}"


# -- the inputs -------------------------------------------------------------------------------


def inputs(model: Model) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The model's input batches and their targets: ``mixed`` (normal, clipped to the ZBox
    bounds: negative inputs reach the first layer), ``positive`` (uniform in [0, 1)), ``zeros``
    (one all-zero sample)."""
    rng = np.random.default_rng(100 + model.seed)
    shape = (2, *model.input_shape)
    return {
        "mixed": (np.clip(rng.standard_normal(shape), LOW, HIGH), [0, 2]),
        "positive": (rng.uniform(0.0, 1.0, shape), [2, 1]),
        "zeros": (np.zeros((1, *model.input_shape)), [1]),
    }


#: SmoothGrad's settings; its noise is ``default_rng(seed).standard_normal((n, *x.shape)) * sigma``,
#: as npxai's SmoothGrad draws it, and is stored with the inputs.
SMOOTHGRAD = {"n": 4, "sigma": 0.2, "seed": 7}


def smoothgrad_noise(x: np.ndarray) -> np.ndarray:
    """The noise of the ``smoothgrad`` cases for input ``x``: ``(n, *x.shape)``."""
    rng = np.random.default_rng(SMOOTHGRAD["seed"])
    return rng.standard_normal((SMOOTHGRAD["n"], *x.shape)) * SMOOTHGRAD["sigma"]


# -- each convention's rules, and how its library spells them ----------------------------------


def _zennit_name(rule: R.Rule, layer: L.Layer) -> list | None:
    """Zennit's rule class and arguments for an npxai rule of the zennit convention on ``layer``;
    ``None``: the layer is left unhooked (its gradient). A flatten's ``PassRule`` is ``None``:
    its gradient passes the relevance back unchanged, Zennit's composites hook no flatten, and
    Zennit's ``Pass`` cannot run on it (``zennit/rules.py``, ``Pass.backward`` returns the
    output's gradient as the input's, and torch refuses a hook that changes a gradient's shape)."""
    stab = {"stabilizer": getattr(rule, "epsilon", None)}
    match rule:
        case R.PassRule() if isinstance(layer, L.Flatten):
            return None
        case R.NormRule():
            return ["Norm", stab]
        case R.EpsilonRule():
            return ["Epsilon", {"epsilon": rule.epsilon}]
        case R.GeneralizedGammaRule():
            return ["Gamma", {"gamma": rule.gamma, **stab}]
        case R.ZPlusRule():
            return ["ZPlus", stab]
        case R.AlphaBetaRule():
            return ["AlphaBeta", {"alpha": rule.alpha, "beta": rule.beta, **stab}]
        case R.WSquareRule():
            return ["WSquare", stab]
        case R.FlatRule():
            return ["Flat", stab]
        case R.ZBoxRule():
            return ["ZBox", {"low": rule.low, "high": rule.high, **stab}]
        case R.PassRule():
            return ["Pass", {}]
        case R.GradientRule():
            return None
    raise ValueError(f"Zennit has no rule for {rule!r}")


def _captum_name(rule: R.Rule) -> list | None:
    """Captum's rule class and arguments; ``None``: Captum's pass-through (ReLU) or a functional
    op (a sum, a concatenation, a flatten), whose gradient runs."""
    match rule:
        case R.EpsilonRule():
            return ["EpsilonRule", {"epsilon": rule.epsilon}]
        case R.GammaRule():
            return ["GammaRule", {"gamma": rule.gamma}]
        case captum.Alpha1Beta0Rule():
            return ["Alpha1_Beta0_Rule", {}]
        case R.PassRule() | R.GradientRule():
            return None
    raise ValueError(f"Captum has no rule for {rule!r}")


#: The rule each convention calls by each rule-grid name (absent: the library has none).
GRID: dict[str, dict[str, Callable[[], R.Rule]]] = {
    "zero": {"npxai": R.ZeroRule, "julia": julia.ZeroRule},
    "epsilon": {
        "npxai": R.EpsilonRule,
        "zennit": lambda: R.EpsilonRule(1e-6),
        "captum": lambda: R.EpsilonRule(1e-9),
        "julia": julia.EpsilonRule,
    },
    "gamma": {
        "npxai": R.GammaRule,
        "zennit": lambda: R.GeneralizedGammaRule(0.25, epsilon=1e-6),
        "captum": lambda: R.GammaRule(0.25, bias=False, epsilon=1e-9),
        "julia": julia.GammaRule,
    },
    "generalized_gamma": {"npxai": R.GeneralizedGammaRule, "julia": julia.GeneralizedGammaRule},
    "zplus": {
        "npxai": R.ZPlusRule,
        "zennit": lambda: R.ZPlusRule(epsilon=1e-6),
        "captum": captum.Alpha1Beta0Rule,
        "julia": julia.ZPlusRule,
    },
    "alpha1beta0": {
        "npxai": lambda: R.AlphaBetaRule(1.0, 0.0),
        "zennit": lambda: R.AlphaBetaRule(1.0, 0.0, epsilon=1e-6),
        "captum": captum.Alpha1Beta0Rule,
        "julia": lambda: julia.AlphaBetaRule(1.0, 0.0),
    },
    "alpha2beta1": {
        "npxai": R.AlphaBetaRule,
        "zennit": lambda: R.AlphaBetaRule(2.0, 1.0, epsilon=1e-6),
        "julia": julia.AlphaBetaRule,
    },
    "wsquare": {
        "npxai": R.WSquareRule,
        "zennit": lambda: R.WSquareRule(bias=True, epsilon=1e-6),
        "julia": julia.WSquareRule,
    },
    "flat": {
        "npxai": R.FlatRule,
        "zennit": lambda: R.FlatRule(epsilon=1e-6),
        "julia": julia.FlatRule,
    },
    "zbox": {
        "npxai": lambda: R.ZBoxRule(LOW, HIGH),
        "zennit": lambda: R.ZBoxRule(LOW, HIGH, epsilon=1e-6),
        "julia": lambda: julia.ZBoxRule(LOW, HIGH),
    },
}


def _others(convention: str) -> list:
    """The rules a convention gives the layers without parameters (the rule grid's other
    layers)."""
    if convention == "zennit":
        return zennit.layer_map_base(1e-6)
    if convention == "captum":
        return [*captum.COMPOSITE.entries, (ByType(L.Add), R.GradientRule())]
    if convention == "julia":
        return julia.unparametrised()
    return []


def _grid_composite(family: str, convention: str) -> Composite:
    rule = GRID[family][convention]()
    if family == "zbox":
        dense = GRID["epsilon"][convention]()
        entries = [(ByType(*PARAMETRIC), dense), (FirstOfType(*PARAMETRIC), rule)]
    elif family == "flat" and convention == "julia":  # Julia's fast path for Dense
        entries = [(ByType(L.Conv2d), rule), (ByType(L.Linear), julia.FlatRule(dense=True))]
    else:
        entries = [(ByType(*PARAMETRIC), rule)]
    return Composite(*_others(convention), *entries, name=f"{family}@{convention}")


#: The named composites of each library, with the arguments the suite gives them.
PRESETS: dict[str, dict[str, Callable[[], Composite]]] = {
    "npxai": {
        "EpsilonPlus": npxai_presets.EpsilonPlus,
        "EpsilonPlusFlat": npxai_presets.EpsilonPlusFlat,
        "EpsilonAlpha2Beta1": npxai_presets.EpsilonAlpha2Beta1,
        "EpsilonAlpha2Beta1Flat": npxai_presets.EpsilonAlpha2Beta1Flat,
        "EpsilonGammaBox": lambda: npxai_presets.EpsilonGammaBox(LOW, HIGH),
        "ExcitationBackprop": npxai_presets.ExcitationBackprop,
    },
    "zennit": {
        "EpsilonPlus": zennit.EpsilonPlus,
        "EpsilonPlusFlat": zennit.EpsilonPlusFlat,
        "EpsilonAlpha2Beta1": zennit.EpsilonAlpha2Beta1,
        "EpsilonAlpha2Beta1Flat": zennit.EpsilonAlpha2Beta1Flat,
        "EpsilonGammaBox": lambda: zennit.EpsilonGammaBox(LOW, HIGH),
        "ExcitationBackprop": zennit.ExcitationBackprop,
    },
    "julia": {
        "EpsilonPlus": julia.EpsilonPlus,
        "EpsilonPlusFlat": julia.EpsilonPlusFlat,
        "EpsilonAlpha2Beta1": julia.EpsilonAlpha2Beta1,
        "EpsilonAlpha2Beta1Flat": julia.EpsilonAlpha2Beta1Flat,
        "EpsilonGammaBox": lambda: julia.EpsilonGammaBox(LOW, HIGH),
    },
}

#: What ``LRP(model)`` computes in each library.
LRP_DEFAULT: dict[str, Callable[[], Composite]] = {
    "npxai": npxai_presets.EpsilonPlusFlat,
    "captum": lambda: captum.COMPOSITE + [(ByType(L.Add), R.GradientRule())],
    "julia": julia.Default,
}

#: How each convention treats batch norms and where its relevance starts.
BATCH_NORM = {"npxai": "folded", "zennit": "zennit", "captum": "unfolded", "julia": "unfolded"}
OUTPUT_RELEVANCE = {"npxai": "one", "zennit": "one", "captum": "logit", "julia": "one"}
LIBRARY = {
    "npxai": "npxai",
    "zennit": "zennit",
    "captum": "captum",
    "julia": "RelevancePropagation.jl",
}


def _lrp_cases(model: Model, graph: Graph, batch: str) -> list[Case]:
    made = []

    def add(family: str, convention: str, composite: Composite, peer: dict) -> None:
        case = Case(
            f"{model.name}/{family}/{batch}",
            convention,
            model.name,
            batch,
            "LRP",
            {"library": LIBRARY[convention], **peer},
            composite=composite,
            batch_norm=BATCH_NORM[convention],
            output_relevance=OUTPUT_RELEVANCE[convention],
        )
        rules = prepare(case, graph).rules  # the library's spelling of every layer's rule
        if convention == "zennit":
            layers = dict(graph.named_modules())
            case.peer["rules"] = {k: _zennit_name(r, layers[k]) for k, r in rules.items()}
        elif convention == "captum":
            case.peer["rules"] = {k: _captum_name(r) for k, r in rules.items()}
        made.append(case)

    for family, spelled in GRID.items():
        for convention in spelled:
            add(family, convention, _grid_composite(family, convention), {"rule": family})
    for convention, presets in PRESETS.items():
        for name, preset in presets.items():
            if name == "EpsilonGammaBox" and not model.convolutional:
                continue  # no first convolution to take the box
            add(f"preset/{name}", convention, preset(), {"composite": name})
    for convention, composite in LRP_DEFAULT.items():
        add("lrp_default", convention, composite(), {"composite": "LRP(model)"})
    if any(node.layer == "BatchNorm2d" for node in model.nodes):  # npxai with them kept
        for family in ("epsilon", "zplus"):
            case = Case(f"{model.name}/{family}/{batch}/unfolded", "npxai", model.name, batch,
                        "LRP", {"library": "npxai", "rule": family},
                        composite=_grid_composite(family, "npxai"), batch_norm="unfolded")  # fmt: skip
            made.append(case)
    return made


def _gradient_cases(model: Model, batch: str) -> list[Case]:
    family = f"{model.name}/{{}}/{batch}"
    made = [
        Case(family.format("gradient"), "npxai", model.name, batch, "Gradient",
             {"library": "npxai", "method": "Gradient"}),
        Case(family.format("gradient"), "zennit", model.name, batch, "Gradient",
             {"library": "zennit", "method": "Gradient"}),
        Case(family.format("gradient"), "captum", model.name, batch, "Gradient",
             {"library": "captum", "method": "Saliency", "abs": True}, absolute=True),
        Case(family.format("input_times_gradient"), "npxai", model.name, batch,
             "InputTimesGradient", {"library": "npxai", "method": "InputTimesGradient"}),
        Case(family.format("input_times_gradient"), "captum", model.name, batch,
             "InputTimesGradient", {"library": "captum", "method": "InputXGradient"}),
        Case(family.format("smoothgrad"), "npxai", model.name, batch, "SmoothGrad",
             {"library": "npxai", "method": "SmoothGrad", **SMOOTHGRAD}, parameters=SMOOTHGRAD),
    ]  # fmt: skip
    for quadrature in QUADRATURES:
        parameters = {"n": 8, "method": quadrature, "baseline": 0.0}
        name = family.format(f"integrated_gradients/{quadrature}")
        made.append(Case(name, "npxai", model.name, batch, "IntegratedGradients",
                         {"library": "npxai", "method": "IntegratedGradients", **parameters},
                         parameters=parameters))  # fmt: skip
        captum_name = next((c for c, q in CAPTUM_METHODS.items() if q == quadrature), None)
        if captum_name is not None:
            made.append(Case(name, "captum", model.name, batch, "IntegratedGradients",
                             {"library": "captum", "method": "IntegratedGradients", "n_steps": 8,
                              "method_name": captum_name, "baselines": 0.0},
                             parameters=parameters, tolerance=CAPTUM_QUADRATURE_TOLERANCE))  # fmt: skip
        if quadrature == "riemann_right":  # Zennit's IntegratedGradients
            made.append(Case(name, "zennit", model.name, batch, "IntegratedGradients",
                             {"library": "zennit", "method": "IntegratedGradients", "n_iter": 8},
                             parameters=parameters))  # fmt: skip
    if model.gradcam is not None:
        layer = model.gradcam
        for convention, peer, relu in (
            ("npxai", {"method": "GradCAM", "layer": layer, "relu": True}, True),
            (
                "captum",
                {"method": "LayerGradCam", "layer": layer, "relu_attributions": False},
                False,
            ),
        ):  # Captum's default relu_attributions=False: the signed map
            made.append(Case(family.format("gradcam"), convention, model.name, batch, "GradCAM",
                             {"library": LIBRARY[convention], **peer},
                             parameters={"layer": layer, "relu": relu}))  # fmt: skip
    return made


def all_cases() -> list[Case]:
    """Every case of the suite, model by model and input by input."""
    made = []
    for model in MODELS.values():
        graph = build(model)
        for batch in ("mixed", "positive", "zeros"):
            made += _lrp_cases(model, graph, batch) + _gradient_cases(model, batch)
    return made


# -- running a case with npxai -----------------------------------------------------------------


def prepare(case: Case, graph: Graph) -> LRP | Gradient:
    """The npxai analyzer that computes ``case`` on ``graph`` (a suite model) in float64, on the
    numpy backend; for LRP it records every layer's relevance."""
    if case.method == "LRP":
        model = zennit.merge_batch_norms(graph) if case.batch_norm == "zennit" else graph
        return LRP(model, case.composite, output_relevance=case.output_relevance, record=True,
                   backend="numpy", canonize=case.batch_norm == "folded")  # fmt: skip
    p = case.parameters
    if case.method == "Gradient":
        return Gradient(graph, backend="numpy")
    if case.method == "InputTimesGradient":
        return InputTimesGradient(graph, backend="numpy")
    if case.method == "IntegratedGradients":
        return IntegratedGradients(graph, n=p["n"], baseline=p["baseline"], method=p["method"],
                                   backend="numpy", progress=False)  # fmt: skip
    if case.method == "SmoothGrad":
        return SmoothGrad(graph, n=p["n"], sigma=p["sigma"], seed=p["seed"], backend="numpy",
                          progress=False)  # fmt: skip
    if case.method == "GradCAM":
        return GradCAM(graph, layer=p["layer"], backend="numpy", relu=p["relu"])
    raise ValueError(f"case {case.name}: unknown method {case.method!r}")


def relevances(case: Case, graph: Graph, x: np.ndarray, target: list[int]) -> dict[str, np.ndarray]:
    """The case's results computed by npxai: ``{"input": attribution, "layer/<node>": relevance
    at the node's input}`` (a node with several inputs: ``"layer/<node>/<k>"``)."""
    explanation = prepare(case, graph)(x, target)
    attribution = np.abs(explanation.attribution) if case.absolute else explanation.attribution
    arrays = {"input": attribution}
    for key, value in explanation.extras.get("relevance", {}).items():
        if isinstance(value, tuple):
            arrays.update({f"layer/{key}/{k}": v for k, v in enumerate(value)})
        else:
            arrays[f"layer/{key}"] = value
    return arrays
