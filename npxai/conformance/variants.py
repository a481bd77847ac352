"""The known conventions in which implementations of the same explanation differ, as data.

A :class:`Variant` is one such convention: a name, a text that says what it computes and which
library does it, the *slot* it sets (the property it is a value of: the epsilon, the z+ form, the
output relevance, ...) and a function that changes a :class:`~npxai.conformance.cases.Case` to
follow it, returning ``None`` where the case has nothing it changes. An LRP case's rules are read
from its composite, one ``Keys(layer)`` entry per layer (as :meth:`Suite.as_case
<npxai.conformance.suite.Suite.as_case>` builds it); a rule variant changes every layer whose rule
it concerns. :func:`combinations` applies several variants of distinct slots in the order of
:data:`VARIANTS` (the rule forms first, the epsilon and the stabiliser kind last, so that those
also reach the rules the others put in).

Where each convention comes from (the peers' installed source, or ``/work/shared/notes/
lrp-conventions.md`` for iNNvestigate, which is not installed here):

- epsilon: Zennit's default ``1e-6`` for every rule (``zennit/rules.py``, ``stabilizer=1e-6``);
  Captum's ``1e-9`` (``STABILITY_FACTOR`` and ``EpsilonRule(epsilon=1e-9)`` in
  ``captum/attr/_utils/lrp_rules.py``); RelevancePropagation.jl's ``1.0f-6`` and ``1.0f-9``
  widened to float64 (:mod:`npxai.compat.julia`); iNNvestigate's ``1e-7`` (notes). Each of these
  variants sets every stabilised rule's epsilon on every layer; ``epsilon/julia`` sets
  RelevancePropagation.jl's two: ``1.0f-6`` for the epsilon rule of dense and convolutional
  layers, ``1.0f-9`` for every other rule. In float64 ``1e-9`` and ``float32(1e-9)`` (and
  ``1e-6``, ``float32(1e-6)``) change a relevance by less than the suite's tolerance, so both of
  a pair match alike; ``0`` and ``1e-9`` may too where no denominator is small.
- stabiliser kind: ``z + eps sgn0(z)`` (Zennit's ``Stabilizer``, Captum's
  ``_backward_hook_output``: ``sign[sign == 0] = 1``); ``sgn0(z) max(|z|, eps)`` (Zennit's
  ``Stabilizer(clip=True)``, ``zennit/core.py``); ``z + eps [z = 0]`` (iNNvestigate's rules
  other than Epsilon, notes).
- z+: inputs split by sign with ``b+`` (Zennit's ``ZPlus``, RelevancePropagation.jl's
  ``ZPlusRule``, npxai's :class:`~npxai.lrp.rules.ZPlusRule`); without bias (iNNvestigate's
  ``ZPlus``, notes); the weights clamped, ``W+ x + b``, inputs not split (Captum's
  ``Alpha1_Beta0_Rule``: ``module.weight.data.clamp(min=0)``; ``set_bias_to_zero=True`` drops the
  bias; :class:`npxai.compat.captum.Alpha1Beta0Rule`).
- alpha-beta: ``b+`` in the positive, ``b-`` in the negative denominator (Zennit's ``AlphaBeta``,
  RelevancePropagation.jl); no bias; the full bias in both (iNNvestigate's, notes).
- gamma: ``W + gamma W+`` and ``b + gamma b+`` (RelevancePropagation.jl's ``GammaRule``); the bias
  not scaled (Captum's ``GammaRule``: only ``weight.data`` gets ``gamma * clamp(min=0)``); the
  sign-aware gamma (Zennit's ``Gamma``, "Generalized LRP Gamma rule", ``zennit/rules.py``; npxai's
  :class:`~npxai.lrp.rules.GeneralizedGammaRule`).
- w-square: ``b^2`` in the denominator (Zennit's ``WSquare``) or no bias (RelevancePropagation.jl).
- max pooling: the gradient, winner takes all (Zennit leaves it unhooked); the epsilon rule through
  its gradient, ``x_max R / stab(x_max)`` (Captum's ``SUPPORTED_LAYERS_WITH_RULES``:
  ``nn.MaxPool2d: EpsilonRule``, ``captum/attr/_core/lrp.py``; RelevancePropagation.jl's
  ``ZeroRule``).
- residual sums: the z-rule ``R_k = x_k R / stab(sum x)`` (Zennit's ``Norm`` on its
  ``ResNetCanonizer``'s ``Sum``) or the full relevance to both summands (Captum: a bare ``a + b``
  is not a module, its gradient runs).
- batch norm: folded exactly (:func:`npxai.canonize`); folded as Zennit's ``MergeBatchNorm``
  (``zennit/canonizers.py``: the merged batch norm keeps its ``eps`` with ``running_var = 1``,
  so ``x / sqrt(1 + eps)`` is left behind); kept and passed through (RelevancePropagation.jl's
  presets); kept under the epsilon rule on its affine map (Captum's ``nn.BatchNorm2d:
  EpsilonRule``).
- output relevance: 1 at the target (Zennit's one-hot ``attr_output``, RelevancePropagation.jl's
  ``normalize_output_relevance=true``) or the target's logit (Captum's ``LRP.attribute``
  multiplies the relevances by ``output``).
- gradient methods: the absolute value (Captum's ``Saliency``, ``abs=True``) or the signed
  attribution; integrated gradients by each of npxai's quadratures (Zennit's right Riemann sum,
  Captum's Gauss-Legendre default).

Not stated: Flat counting the padding positions of a convolution. It needs the model rewritten
(an explicit ``ZeroPad2d`` under the gradient before an unpadded convolution), not a case's
rules, and no peer read here does it (Zennit, RelevancePropagation.jl and npxai count only the
positions inside the input).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..analyzers.integrated_gradients import QUADRATURES
from ..compat import captum, julia
from ..lrp import rules as R
from ..lrp.composites import Composite, Keys
from .cases import Case
from .models import Model

#: The longest combination of variants :func:`combinations` makes.
MOST = 4


@dataclass(frozen=True)
class Variant:
    """A known convention: ``name`` (short, stable), ``text`` (what it computes, and who does it),
    ``slot`` (the property it sets; a combination sets each slot once) and ``change``, which makes
    the case follow it, ``None`` where nothing of the case changes."""

    name: str
    text: str
    slot: str
    change: Callable[[Case, Model], Case | None]


def _rules_of(case: Case) -> dict[str, R.Rule]:
    """An LRP case's rule per layer, from its composite's ``Keys(layer)`` entries."""
    return {selector.keys[0]: rule for selector, rule in case.composite.entries}


def _with_rules(case: Case, rules: dict[str, R.Rule]) -> Case:
    """``case`` with ``rules``, one ``Keys(layer)`` entry each."""
    entries = ((Keys(key), rule) for key, rule in rules.items())
    return dataclasses.replace(case, composite=Composite(*entries, name=case.composite.name))


def _rebuilt(rule: R.LinearRule, **changes: object) -> R.LinearRule:
    """``rule`` with some of its parameters changed (a ``ZeroRule`` is ``EpsilonRule(0)``)."""
    if type(rule) is R.ZeroRule:
        rule = R.EpsilonRule(0.0)
    return type(rule)(**{**rule._parameters(), **changes})


def _changed_rules(
    case: Case, model: Model, changed: Callable[[str, R.Rule], R.Rule | None]
) -> Case | None:
    """``case`` with each layer's rule ``changed(layer type, rule)`` where that is not ``None``
    and differs from the rule; ``None`` where no layer changes."""
    if case.method != "LRP":
        return None
    types = {node.name: node.layer for node in model.nodes}
    rules, any_changed = _rules_of(case), False
    for key, rule in rules.items():
        new = changed(types[key], rule)
        if new is not None and new != rule:
            rules[key], any_changed = new, True
    return _with_rules(case, rules) if any_changed else None


def _rule_variant(
    name: str, text: str, slot: str, changed: Callable[[str, R.Rule], R.Rule | None]
) -> Variant:
    """A variant that changes the layers' rules by ``changed`` (:func:`_changed_rules`)."""
    return Variant(name, text, slot, lambda case, model: _changed_rules(case, model, changed))


class _AlphaBetaBias(R.LinearRule):
    """Alpha-beta with its bias handled otherwise than npxai's ``b+`` / ``b-``: ``bias="none"``
    (no bias in either denominator) or ``"full"`` (``b`` in both: ``W+ x+ + W- x- + b`` and
    ``W- x+ + W+ x- + b``)."""

    def __init__(self, alpha: float, beta: float, bias: str, epsilon: float, stabilizer: str):
        super().__init__(epsilon, stabilizer)
        self.alpha, self.beta, self.bias = alpha, beta, bias

    def groups(self) -> list[R.Group]:
        b = R.identity if self.bias == "full" else None
        return [
            R.Group([R.Term(R.positive, R.positive, b), R.Term(R.negative, R.negative, None)],
                    self.alpha),
            R.Group([R.Term(R.positive, R.negative, b), R.Term(R.negative, R.positive, None)],
                    -self.beta),
        ]  # fmt: skip

    def _parameters(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "bias": self.bias,
                **super()._parameters()}  # fmt: skip


# -- the forms of a rule: which one a rule has, and the rule of each form ----------------------


def _zplus_form(rule: R.Rule) -> str | None:
    match rule:
        case R.ZPlusRule():
            return "split-b+" if rule.bias == "positive" else "split-no-bias"
        case R.AlphaBetaRule() if rule.beta == 0:
            return "split-b+"
        case captum.Alpha1Beta0Rule():
            return "clamped" if rule.bias else "clamped-no-bias"
    return None


def _zplus(form: str) -> Callable[[str, R.Rule], R.Rule | None]:
    def changed(layer: str, rule: R.Rule) -> R.Rule | None:
        if _zplus_form(rule) in (None, form):
            return None
        eps = {"epsilon": rule.epsilon, "stabilizer": rule.stabilizer}
        if form.startswith("split"):
            return R.ZPlusRule("positive" if form == "split-b+" else "none", **eps)
        return captum.Alpha1Beta0Rule(bias=form == "clamped", **eps)

    return changed


def _alpha_beta(bias: str) -> Callable[[str, R.Rule], R.Rule | None]:
    def changed(layer: str, rule: R.Rule) -> R.Rule | None:
        if isinstance(rule, R.AlphaBetaRule) and rule.beta > 0:
            current = "b+/b-"
        elif isinstance(rule, _AlphaBetaBias):
            current = rule.bias
        else:
            return None
        if current == bias:
            return None
        args = (rule.alpha, rule.beta)
        eps = {"epsilon": rule.epsilon, "stabilizer": rule.stabilizer}
        if bias == "b+/b-":
            return R.AlphaBetaRule(*args, **eps)
        return _AlphaBetaBias(*args, bias, **eps)

    return changed


def _gamma(form: str) -> Callable[[str, R.Rule], R.Rule | None]:
    def changed(layer: str, rule: R.Rule) -> R.Rule | None:
        if not isinstance(rule, R.GammaRule | R.GeneralizedGammaRule):
            return None
        eps = {"epsilon": rule.epsilon, "stabilizer": rule.stabilizer}
        if form == "sign-aware":
            return R.GeneralizedGammaRule(rule.gamma, **eps)
        return R.GammaRule(rule.gamma, bias=form == "bias", **eps)

    return changed


def _wsquare(bias: bool) -> Callable[[str, R.Rule], R.Rule | None]:
    def changed(layer: str, rule: R.Rule) -> R.Rule | None:
        return _rebuilt(rule, bias=bias) if isinstance(rule, R.WSquareRule) else None

    return changed


def _z_rule(rule: R.Rule) -> bool:
    """Whether ``rule`` is the plain z-rule (``EpsilonRule``, ``ZeroRule``, ``NormRule``)."""
    return type(rule) in (R.EpsilonRule, R.ZeroRule, R.NormRule)


def _on_layer(layer_type: str, gradient: bool, z_rule: R.Rule) -> Callable:
    """Layers of ``layer_type`` by the gradient (``gradient=True``) or by ``z_rule``."""

    def changed(layer: str, rule: R.Rule) -> R.Rule | None:
        if layer != layer_type or not (_z_rule(rule) or isinstance(rule, R.GradientRule)):
            return None
        if gradient:
            return R.GradientRule()
        return None if _z_rule(rule) else z_rule

    return changed


def _epsilon(value: float) -> Callable[[str, R.Rule], R.Rule | None]:
    def changed(layer: str, rule: R.Rule) -> R.Rule | None:
        if not isinstance(rule, R.LinearRule) or rule.epsilon == value:
            return None
        return _rebuilt(rule, epsilon=value)

    return changed


def _julia_rule(layer: str, rule: R.Rule) -> R.Rule | None:
    """RelevancePropagation.jl's epsilons: ``EPSILON`` for the epsilon rule of a dense or
    convolutional layer, ``STABILIZER`` for every other rule (its ``ZeroRule`` included)."""
    if not isinstance(rule, R.LinearRule):
        return None
    epsilon_rule = layer in ("Linear", "Conv2d") and type(rule) is R.EpsilonRule
    return _rebuilt(rule, epsilon=julia.EPSILON if epsilon_rule else julia.STABILIZER)


def _julia_epsilons(case: Case, model: Model) -> Case | None:
    """Julia's two epsilons, where the case has an epsilon rule on a dense or convolutional
    layer (elsewhere they are ``epsilon/float32(1e-09)``, which is named instead)."""
    if case.method != "LRP":
        return None
    types = {node.name: node.layer for node in model.nodes}
    dense = [rule for key, rule in _rules_of(case).items() if types[key] in ("Linear", "Conv2d")]
    if not any(type(rule) is R.EpsilonRule for rule in dense):
        return None
    return _changed_rules(case, model, _julia_rule)


def _stabilizer(kind: str) -> Callable[[str, R.Rule], R.Rule | None]:
    def changed(layer: str, rule: R.Rule) -> R.Rule | None:
        if not isinstance(rule, R.LinearRule) or rule.epsilon == 0:
            return None
        return _rebuilt(rule, stabilizer=kind)

    return changed


# -- the variants of a case's other settings ------------------------------------------------------


def _batch_norm(how: str, rule: R.Rule | None) -> Callable[[Case, Model], Case | None]:
    """Batch norms treated as ``how`` (a :class:`Case`'s ``batch_norm``), under ``rule``
    (``None``: folded, the folded layer keeps its rule unless it was the epsilon rule of an
    unfolded batch norm, which becomes ``PassRule``)."""

    def change(case: Case, model: Model) -> Case | None:
        norms = [node.name for node in model.nodes if node.layer == "BatchNorm2d"]
        if case.method != "LRP" or not norms:
            return None
        rules = _rules_of(case)
        new = {key: rule if rule is not None else R.PassRule() if _z_rule(rules[key]) else rules[key]
               for key in norms}  # fmt: skip
        if case.batch_norm == how and all(rules[key] == new[key] for key in norms):
            return None
        return dataclasses.replace(_with_rules(case, {**rules, **new}), batch_norm=how)

    return change


def _output(relevance: str) -> Callable[[Case, Model], Case | None]:
    def change(case: Case, model: Model) -> Case | None:
        if case.method != "LRP" or case.output_relevance == relevance:
            return None
        return dataclasses.replace(case, output_relevance=relevance)

    return change


def _absolute(absolute: bool) -> Callable[[Case, Model], Case | None]:
    def change(case: Case, model: Model) -> Case | None:
        if case.method in ("LRP", "GradCAM") or case.absolute == absolute:
            return None
        return dataclasses.replace(case, absolute=absolute)

    return change


def _parameter(method: str, key: str, value: object) -> Callable[[Case, Model], Case | None]:
    """The ``method`` cases with ``parameters[key] = value``."""

    def change(case: Case, model: Model) -> Case | None:
        if case.method != method or case.parameters[key] == value:
            return None
        return dataclasses.replace(case, parameters={**case.parameters, key: value})

    return change


_EPSILONS = (
    (0.0, "0", "no stabiliser: LRP-0 (npxai's ZeroRule)"),
    (1e-9, "1e-09", "Captum's STABILITY_FACTOR and EpsilonRule default"),
    (1e-7, "1e-07", "iNNvestigate's default (notes)"),
    (julia.STABILIZER, "float32(1e-09)",
     "RelevancePropagation.jl's LRP_DEFAULT_STABILIZER = 1.0f-9, widened to float64"),
    (julia.EPSILON, "float32(1e-06)",
     "RelevancePropagation.jl's LRP_DEFAULT_EPSILON = 1.0f-6, widened to float64"),
    (1e-6, "1e-06", "Zennit's default for every rule, npxai's"),
)  # fmt: skip

_QUADRATURE_USERS = {
    "riemann_left": "iNNvestigate's (notes)",
    "riemann_right": "Zennit's IntegratedGradients",
    "riemann_middle": "Captum's method='riemann_middle'",
    "riemann_trapezoid": "npxai's, weights summing to 1 (Captum's sum to (n-1)/n)",
    "gauss_legendre": "Captum's default method='gausslegendre'",
}

#: Every known variant, in the order a combination applies them.
VARIANTS: tuple[Variant, ...] = (
    _rule_variant("zplus/split-b+",
                  "z+ with the inputs split by sign, W+ x+ + W- x- + b+ (Zennit's ZPlus, "
                  "RelevancePropagation.jl's ZPlusRule, npxai's ZPlusRule)",
                  "zplus", _zplus("split-b+")),
    _rule_variant("zplus/split-no-bias",
                  "z+ with the inputs split by sign and no bias, W+ x+ + W- x- (iNNvestigate's "
                  "ZPlus, notes)", "zplus", _zplus("split-no-bias")),
    _rule_variant("zplus/clamped",
                  "z+ with the weights clamped, W+ x + b, the inputs not split (Captum's "
                  "Alpha1_Beta0_Rule)", "zplus", _zplus("clamped")),
    _rule_variant("zplus/clamped-no-bias",
                  "z+ with the weights clamped and no bias, W+ x (Captum's Alpha1_Beta0_Rule with "
                  "set_bias_to_zero=True)", "zplus", _zplus("clamped-no-bias")),
    _rule_variant("alpha-beta/b+b-",
                  "alpha-beta with b+ in the positive and b- in the negative denominator "
                  "(Zennit's AlphaBeta, RelevancePropagation.jl's AlphaBetaRule, npxai's)",
                  "alpha-beta", _alpha_beta("b+/b-")),
    _rule_variant("alpha-beta/no-bias", "alpha-beta without bias in either denominator",
                  "alpha-beta", _alpha_beta("none")),
    _rule_variant("alpha-beta/full-bias",
                  "alpha-beta with the full bias b in both denominators (iNNvestigate's, notes)",
                  "alpha-beta", _alpha_beta("full")),
    _rule_variant("gamma/bias",
                  "gamma on weight and bias, W + gamma W+, b + gamma b+ (RelevancePropagation.jl's "
                  "GammaRule, npxai's GammaRule)", "gamma", _gamma("bias")),
    _rule_variant("gamma/no-bias",
                  "gamma on the weight only, W + gamma W+, b kept (Captum's GammaRule)",
                  "gamma", _gamma("no-bias")),
    _rule_variant("gamma/sign-aware",
                  "the sign-aware gamma: inputs split by sign, neurons by the sign of z (Zennit's "
                  "Gamma, npxai's GeneralizedGammaRule)", "gamma", _gamma("sign-aware")),
    _rule_variant("wsquare/bias", "w-square with b^2 in the denominator (Zennit's WSquare)",
                  "wsquare", _wsquare(True)),
    _rule_variant("wsquare/no-bias",
                  "w-square without bias (RelevancePropagation.jl's WSquareRule, iNNvestigate's)",
                  "wsquare", _wsquare(False)),
    _rule_variant("max-pool/gradient",
                  "max pooling by the gradient, winner takes all (Zennit, iNNvestigate, npxai)",
                  "max-pool", _on_layer("MaxPool2d", True, R.GradientRule())),
    _rule_variant("max-pool/epsilon",
                  "max pooling by the epsilon rule through its gradient, x_max R / stab(x_max), "
                  "epsilon 1e-9 (Captum's EpsilonRule on MaxPool2d; RelevancePropagation.jl's "
                  "ZeroRule)", "max-pool", _on_layer("MaxPool2d", False, R.EpsilonRule(1e-9))),
    _rule_variant("sum/z-rule",
                  "residual sums by the z-rule, R_k = x_k R / stab(sum x) (Zennit's Norm on its "
                  "ResNetCanonizer's Sum, npxai's NormRule)",
                  "sum", _on_layer("Add", False, R.NormRule())),
    _rule_variant("sum/gradient",
                  "residual sums by the gradient: the full relevance to both summands (Captum, "
                  "whose a + b is no module)", "sum", _on_layer("Add", True, R.GradientRule())),
    Variant("batch-norm/folded", "batch norms folded exactly into the layer before "
            "(npxai.canonize)", "batch-norm", _batch_norm("folded", None)),
    Variant("batch-norm/zennit",
            "batch norms folded as Zennit's MergeBatchNorm, which leaves x / sqrt(1 + eps) "
            "behind (its eps kept, running_var 1)", "batch-norm",
            _batch_norm("zennit", None)),
    Variant("batch-norm/unfolded-pass",
            "batch norms kept and passed through (RelevancePropagation.jl's presets)",
            "batch-norm", _batch_norm("unfolded", R.PassRule())),
    Variant("batch-norm/unfolded-epsilon",
            "batch norms kept, the epsilon rule (1e-9) on their affine map (Captum's "
            "EpsilonRule on BatchNorm2d)", "batch-norm",
            _batch_norm("unfolded", R.EpsilonRule(1e-9))),
    Variant("output/one",
            "relevance starting at 1 at the target (Zennit's one-hot attr_output, "
            "RelevancePropagation.jl, npxai)", "output", _output("one")),
    Variant("output/logit",
            "relevance starting at the target's logit (Captum's LRP multiplies by the output; "
            "iNNvestigate's LRP)", "output", _output("logit")),
    Variant("absolute", "the absolute value of the attribution (Captum's Saliency, abs=True)",
            "absolute", _absolute(True)),
    Variant("signed", "the signed attribution (npxai, Zennit)", "absolute", _absolute(False)),
    Variant("gradcam/relu", "Grad-CAM's map through a ReLU (the paper, npxai's GradCAM, "
            "Captum's relu_attributions=True)", "gradcam", _parameter("GradCAM", "relu", True)),
    Variant("gradcam/no-relu", "Grad-CAM's signed map, no ReLU (Captum's LayerGradCam default, "
            "relu_attributions=False)", "gradcam", _parameter("GradCAM", "relu", False)),
    *(Variant(f"quadrature/{q}", f"integrated gradients by the {q} quadrature "
              f"({_QUADRATURE_USERS[q]})", "quadrature", _parameter("IntegratedGradients", "method", q)) for q in QUADRATURES),
    *(_rule_variant(f"epsilon/{name}", f"epsilon {name} on every stabilised rule ({who})",
                    "epsilon", _epsilon(value)) for value, name, who in _EPSILONS),
    Variant("epsilon/julia",
            "RelevancePropagation.jl's epsilons: float32(1e-6) (LRP_DEFAULT_EPSILON) for the "
            "EpsilonRule of dense and convolutional layers, float32(1e-9) "
            "(LRP_DEFAULT_STABILIZER) for every other rule, ZeroRule included",
            "epsilon", _julia_epsilons),
    _rule_variant("stabilizer/sign",
                  "the stabiliser z + eps sgn0(z) (Zennit, Captum, RelevancePropagation.jl, npxai)",
                  "stabilizer", _stabilizer("sign")),
    _rule_variant("stabilizer/clip",
                  "the stabiliser sgn0(z) max(|z|, eps) (Zennit's Stabilizer(clip=True))",
                  "stabilizer", _stabilizer("clip")),
    _rule_variant("stabilizer/zero",
                  "the stabiliser z + eps [z = 0] (iNNvestigate's rules other than Epsilon, notes)",
                  "stabilizer", _stabilizer("zero")),
)  # fmt: skip


def combinations(case: Case, model: Model, size: int) -> Iterator[tuple[tuple[Variant, ...], Case]]:
    """Every combination of ``size`` variants of distinct slots that each change ``case`` (applied
    in :data:`VARIANTS`' order, each to the case the ones before made), with the case they make;
    in :data:`VARIANTS`' order."""
    single = [v for v in VARIANTS if v.change(case, model) is not None]
    for chosen in itertools.combinations(single, size):
        if len({v.slot for v in chosen}) < size:
            continue
        changed: Case | None = case
        for variant in chosen:
            changed = variant.change(changed, model)
            if changed is None:
                break
        if changed is not None:
            yield chosen, changed
