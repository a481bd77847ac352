"""One LRP step per layer kind: which rules a layer takes, and the generic step that runs them."""

from __future__ import annotations

import numpy as np

from . import layers as L
from .backend import implementation
from .device import add, multiply
from .module import Record, Signal
from .rules import (
    STABILIZERS,
    AveragePoolRule,
    EpsilonRule,
    GradientRule,
    LinearRule,
    PassRule,
    Rule,
    Term,
    identity,
    negative,
    positive,
)

#: Layers whose parameters a rule may modify.
PARAMETRIC = (L.Linear, L.Conv2d)
#: Layers that are a fixed linear (affine) map of their input: z-type rules without parameters.
FIXED_LINEAR = (L.AvgPool2d, L.AdaptiveAvgPool2d, L.BatchNorm1d, L.BatchNorm2d)
#: Layers whose output has the input's shape, through which relevance may pass unchanged.
SHAPE_PRESERVING = (
    L.ReLU, L.ReLU6, L.LeakyReLU, L.Tanh, L.Sigmoid, L.Dropout, L.Identity, L.Flatten,
    L.BatchNorm1d, L.BatchNorm2d,
)  # fmt: skip


def supported(layer: L.Layer, rule: Rule) -> bool:
    """Whether ``rule`` can run on ``layer``."""
    if isinstance(rule, PassRule):
        return isinstance(layer, SHAPE_PRESERVING)
    if isinstance(rule, AveragePoolRule):
        return isinstance(layer, L.MaxPool2d) and layer.dilation == (1, 1)
    if isinstance(rule, GradientRule):
        return True  # every layer has a VJP
    if isinstance(layer, L.Add):
        return isinstance(rule, EpsilonRule)  # Zero, Epsilon, Norm
    if isinstance(rule, LinearRule):
        if isinstance(layer, PARAMETRIC):
            return True
        # z-type rules on max pooling run through its gradient, as Captum's epsilon rule does
        return isinstance(layer, FIXED_LINEAR + (L.MaxPool2d,)) and rule.parameter_free
    return False


def supported_rules(layer: L.Layer) -> str:
    """The rules a layer takes, for error messages."""
    if isinstance(layer, PARAMETRIC):
        return (
            "ZeroRule, EpsilonRule, NormRule, GammaRule, GeneralizedGammaRule, WSquareRule, "
            "FlatRule, ZPlusRule, AlphaBetaRule, ZBoxRule, GradientRule"
        )
    names = []
    if isinstance(layer, FIXED_LINEAR + (L.Add, L.MaxPool2d)):
        names += ["NormRule", "EpsilonRule", "ZeroRule"]
    names.append("GradientRule")
    if isinstance(layer, L.MaxPool2d) and layer.dilation == (1, 1):
        names.append("AveragePoolRule")
    if isinstance(layer, SHAPE_PRESERVING):
        names.append("PassRule")
    return ", ".join(names)


def check_stabilizer(rule: LinearRule) -> None:
    """The steps divide by :func:`npxai.rules.stabilize` by name (``rule.stabilizer``), in one
    compiled pass on the compiled backends; a rule that overrides ``stabilize()`` is refused."""
    if type(rule).stabilize is not LinearRule.stabilize:
        raise ValueError(
            f"{type(rule).__name__} overrides stabilize(); LRP steps take the stabilizer by name "
            f"(stabilizer= one of {', '.join(STABILIZERS)}), so a custom one cannot run"
        )


def ratio(share: np.ndarray, z: np.ndarray, rule: LinearRule, backend: str) -> np.ndarray:
    """``s = share / stab(z)`` (0 where ``stab(z) = 0``) with the rule's epsilon and stabilizer, on
    the backend's kernel (``npxai.reference.lrp.relevance_ratio`` and its twins)."""
    return implementation("lrp", backend).relevance_ratio(share, z, rule.epsilon, rule.stabilizer)


def linear_step(
    record: Record, rule: LinearRule, relevance: np.ndarray, backend: str
) -> np.ndarray:
    """The generic step of :mod:`npxai.rules`, on the layer's own forward and transposed maps
    (so the compiled kernels run it on the numba backend)."""
    check_stabilizer(rule)
    layer, x = record.layer, record.input
    parametric = isinstance(layer, PARAMETRIC)
    has_bias = parametric and layer.bias is not None

    def modified(name: str, modifier) -> np.ndarray:
        """``W'`` or ``b'``: made once per layer, dtype and modifier, then cached with the layer
        (:meth:`npxai.Module.modified_parameter`)."""
        return layer.modified_parameter(name, x.dtype, None if modifier is identity else modifier)

    if parametric:

        def forward(xt, wt, bt):
            return layer.affine(xt, wt, bt, backend)

        def transpose(s, wt):
            return layer.affine_transpose(s, wt, x, backend)
    else:

        def forward(xt, wt, bt):
            return layer.forward(xt, backend)

        def transpose(s, wt):
            return layer.vjp(x, None, s, backend)

    inputs: dict = {}  # x' per input modifier, made once
    nonnegative: list = []  # whether x >= 0, asked once (after a ReLU or max pool it is)

    def modified_input(modifier) -> np.ndarray | None:
        """``x' = modifier(x)``, where ``x >= 0`` not made: ``x+`` is ``x`` itself and ``x-``
        is zero (``None``), exactly; a batch's activations are large, and each new array costs."""
        if modifier in (positive, negative) and isinstance(x, np.ndarray):
            if not nonnegative:
                nonnegative.append(bool(x.min() >= 0))  # False where x has a NaN
            if nonnegative[0]:
                return x if modifier is positive else None
        return modifier(x)

    def evaluate(term: Term) -> tuple | None:
        """``(x', W', b', term)``, or ``None`` for a term that adds exactly 0 to z and to R_in:
        an all-zero ``x'`` and no bias (after a ReLU or max pool the rules' negative-input terms
        are such). ``W'`` is made only for the terms that remain."""
        if term.input not in inputs:
            inputs[term.input] = modified_input(term.input)
        xt = inputs[term.input]
        bt = modified("bias", term.bias) if has_bias and term.bias is not None else None
        if bt is None and (xt is None or not xt.any()):
            return None
        if xt is None:
            xt = np.zeros_like(x)
        return xt, modified("weight", term.weight) if parametric else None, bt, term

    def z_of(terms: list) -> np.ndarray:
        if parametric and [t[3] for t in terms] == [Term()]:
            return record.output  # the unmodified layer: its output is z, no need to recompute
        z = forward(*terms[0][:3])
        for xt, wt, bt, _ in terms[1:]:
            z += forward(xt, wt, bt)
        return z

    def share(select: str | None) -> np.ndarray:
        if select is None:
            return relevance
        # only the neurons whose unmodified z has the group's sign
        z0 = record.output if parametric else forward(x, None, None)
        return relevance * (z0 > 0 if select == "positive" else z0 < 0)

    groups = []
    for group in rule.groups():
        terms = [t for t in map(evaluate, group.terms) if t is not None]
        if terms:
            groups.append((group.coefficient, terms, group.select))
    if backend != "numpy" and _stackable(layer, groups):
        return _stacked_step(layer, x, rule, groups, share, backend)
    total = None
    for coefficient, terms, select in groups:
        s = ratio(share(select), z_of(terms), rule, backend)
        for xt, wt, _, _ in terms:
            contribution = transpose(s, wt)
            contribution *= xt
            if coefficient != 1:
                contribution *= coefficient
            if total is None:
                total = contribution
            else:
                total += contribution
    return np.zeros_like(x) if total is None else total


def _stackable(layer: L.Layer, groups: list) -> bool:
    """Several groups of one term each, all on the same input (alpha-beta and the generalised
    gamma after a ReLU), of a dense or ungrouped convolutional layer."""
    return (
        isinstance(layer, L.Linear | L.Conv2d)
        and getattr(layer, "groups", 1) == 1
        and len(groups) > 1
        and all(len(terms) == 1 and terms[0][0] is groups[0][1][0][0] for _, terms, _ in groups)
    )


def _stacked_step(layer, x, rule, groups, share, backend) -> np.ndarray:
    """The compiled backends' fused form of the generic step for :func:`_stackable` groups: their
    weights stacked along the outputs, one forward and one transposed map run for all groups
    (``sum_g c_g x' W_g^T s_g = x' [W_1; W_2]^T [c_1 s_1; c_2 s_2]``) instead of one per group."""
    xt = groups[0][1][0][0]

    def stack() -> tuple[np.ndarray, np.ndarray | None]:
        weight = np.concatenate([terms[0][1] for _, terms, _ in groups])
        biases = [terms[0][2] for _, terms, _ in groups]
        if all(bt is None for bt in biases):
            return weight, None
        zeros = np.zeros(len(layer.weight), x.dtype)
        return weight, np.concatenate([zeros if bt is None else bt for bt in biases])

    key = ("stacked", x.dtype.str, tuple((t[0][3].weight, t[0][3].bias) for _, t, _ in groups))
    weight, bias = layer.cached(key, stack)  # made once per layer and rule
    z = np.split(layer.affine(xt, weight, bias, backend), len(groups), axis=1)
    s = np.concatenate(
        [
            c * ratio(share(select), zg, rule, backend)
            for (c, _, select), zg in zip(groups, z, strict=True)
        ],
        axis=1,
    )
    return xt * layer.affine_transpose(s, weight, x, backend)


def sum_step(
    record: Record, rule: EpsilonRule, relevance: np.ndarray, backend: str
) -> tuple[np.ndarray, np.ndarray]:
    """``R_a = a R / stab(a + b)``, ``R_b = b R / stab(a + b)`` for a residual sum (NumPy's
    operators on host arrays, the device kernels on device arrays)."""
    check_stabilizer(rule)
    a, b = record.input
    s = ratio(relevance, add(a, b), rule, backend)
    return multiply(a, s), multiply(b, s)


def as_average_pool(record: Record) -> Record:
    """A max pool's record seen as the average pool with the same window (for AveragePoolRule)."""
    pool = record.layer
    average = L.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode)
    return Record(record.key, average, record.input, None)


def step(record: Record, rule: Rule, relevance: Signal, backend: str) -> Signal:
    """One layer's relevance step: ``R_in`` from ``R_out`` under ``rule``."""
    if isinstance(rule, PassRule):
        return relevance.reshape(record.input.shape)  # Flatten changes the shape, not the values
    if isinstance(rule, GradientRule):
        return record.layer.vjp(record.input, record.output, relevance, backend)
    if isinstance(record.layer, L.Add):
        return sum_step(record, rule, relevance, backend)
    if isinstance(rule, AveragePoolRule):
        record = as_average_pool(record)
    if backend == "cuda":
        from . import lrp_cuda  # imports numba.cuda: only when the cuda backend runs

        return lrp_cuda.linear_step(record, rule, relevance)
    return linear_step(record, rule, relevance, backend)
