"""One LRP step per layer, the same on every backend: the generic step of :mod:`npxai.lrp.rules`
runs the layer's own forward and transposed maps (its kernels) and the element-wise functions of
the backend's ``lrp`` module (``npxai/reference/lrp.py``, ``kernels/cpu/lrp.py``,
``kernels/cuda/lrp.py``: the ratio, the sign selection, the product-accumulate, ...), reached
through :func:`npxai.backend.backend_modules`. Host and device arrays differ only in where the
modified parameters are kept (:meth:`npxai.Module.parameter_as`, ``device=``)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .. import layers as L
from ..backend import backend_modules
from ..device import add, deliver, is_device, multiply, to_host, zeros_like
from ..module import Record, Signal
from .attention import attention_step, matmul_step, softmax_step
from .kinds import ATTENTION, MATRIX_PRODUCTS, PARAMETRIC, PASS_THROUGH
from .rules import (
    ELEMENTWISE,
    STABILIZERS,
    AveragePoolRule,
    EpsilonRule,
    GradientRule,
    LayerNormRule,
    LinearRule,
    PassRule,
    ProductRule,
    Rule,
    SoftmaxRule,
    Term,
    identity,
    negative,
    positive,
)


def check_stabilizer(rule: LinearRule) -> None:
    """The steps divide by :func:`npxai.lrp.rules.stabilize` by name (``rule.stabilizer``), in one
    element-wise kernel on every backend; a rule that defines its own ``stabilize()`` is refused
    rather than silently ignored."""
    if hasattr(rule, "stabilize"):
        raise ValueError(
            f"{type(rule).__name__} overrides stabilize(); LRP steps take the stabilizer by name "
            f"(stabilizer= one of {', '.join(STABILIZERS)}), so a custom one cannot run"
        )


def ratio(ops: ModuleType, share: Signal, z: Signal, rule: LinearRule) -> np.ndarray:
    """``s = share / stab(z)`` (0 where ``stab(z) = 0``) with the rule's epsilon and stabilizer."""
    return ops.relevance_ratio(share, z, rule.epsilon, rule.stabilizer)


def linear_step(
    record: Record, rule: LinearRule, relevance: np.ndarray, backend: str
) -> np.ndarray:
    """The generic step of :mod:`npxai.lrp.rules`, on the layer's own forward and transposed maps
    (so each backend's kernels run it)."""
    check_stabilizer(rule)
    ops = backend_modules(backend).lrp
    layer, x = record.layer, record.input
    parametric = isinstance(layer, PARAMETRIC)
    has_bias = parametric and layer.bias is not None
    on_device = is_device(x)

    def modified(name: str, modifier) -> np.ndarray:
        """``W'`` or ``b'``: made once per layer, dtype and modifier (on the host, whatever the
        modifier), then cached with the layer, on the device for device arrays
        (:meth:`npxai.Module.parameter_as`)."""
        return layer.parameter_as(
            name, x.dtype, None if modifier is identity else modifier, device=on_device
        )

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
        is zero (``None``), exactly; a batch's activations are large, and each new array costs.
        The rules' element-wise modifiers run as the backend's kernel; any other (ZBoxRule's
        bounds, a custom one) runs on the host (for a device array: ``x`` copied there, ``x'``
        sent back; ZBox sits on the first layer, whose input is the image)."""
        if modifier is identity:
            return x
        if modifier in (positive, negative):
            if not nonnegative:
                nonnegative.append(ops.nonnegative(x))  # False where x has a NaN
            if nonnegative[0]:
                return x if modifier is positive else None
        if modifier in ELEMENTWISE:
            return ops.modify(x, modifier.__name__)
        return deliver(modifier(to_host(x)), on_device)

    def bias_of(term: Term) -> np.ndarray | None:
        return modified("bias", term.bias) if has_bias and term.bias is not None else None

    def evaluate(term: Term) -> tuple | None:
        """``(x', term)``, or ``None`` for a term that adds exactly 0 to z and to R_in: an
        all-zero ``x'`` and no bias (after a ReLU or max pool the rules' negative-input terms are
        such). ``W'`` is made only where a remaining term is used."""
        if term.input not in inputs:
            inputs[term.input] = modified_input(term.input)
        xt = inputs[term.input]
        if bias_of(term) is None and (xt is None or not ops.any_nonzero(xt)):
            return None
        return (zeros_like(x) if xt is None else xt), term

    def weight_of(term: Term) -> np.ndarray | None:
        return modified("weight", term.weight) if parametric else None

    def z_of(terms: list) -> np.ndarray:
        if parametric and [term for _, term in terms] == [Term()]:
            return record.output  # the unmodified layer: its output is z, no need to recompute
        z = None
        for xt, term in terms:
            zt = forward(xt, weight_of(term), bias_of(term))
            z = zt if z is None else add(z, zt)
        return z

    def share(select: str | None) -> np.ndarray:
        if select is None:
            return relevance
        # only the neurons whose unmodified z has the group's sign
        z0 = record.output if parametric else forward(x, None, None)
        return ops.select_sign(relevance, z0, select)

    groups = []
    for group in rule.groups():
        terms = [t for t in map(evaluate, group.terms) if t is not None]
        if terms:
            groups.append((group.coefficient, terms, group.select))
    if _stackable(layer, groups):
        return _stacked_step(record, rule, groups, share, backend)
    total = None
    for coefficient, terms, select in groups:
        s = ratio(ops, share(select), z_of(terms), rule)
        for xt, term in terms:
            total = ops.accumulate(total, coefficient, xt, transpose(s, weight_of(term)))
    return zeros_like(x) if total is None else total


def _stackable(layer: L.Layer, groups: list) -> bool:
    """Several groups of one term each, all on the same input (alpha-beta and the generalised
    gamma after a ReLU), of a dense or ungrouped convolutional layer."""
    return (
        isinstance(layer, L.Linear | L.Conv2d)
        and getattr(layer, "groups", 1) == 1
        and len(groups) > 1
        and all(len(terms) == 1 and terms[0][0] is groups[0][1][0][0] for _, terms, _ in groups)
    )


def _stacked_step(record: Record, rule: LinearRule, groups: list, share, backend: str):
    """The fused form of the generic step for :func:`_stackable` groups, on every backend: their
    weights stacked along the outputs, one forward and one transposed map run for all groups
    (``sum_g c_g x' W_g^T s_g = x' [W_1; W_2]^T [c_1 s_1; c_2 s_2]``, where ``c_g s_g =
    (c_g R_g) / stab(z_g)``) instead of one per group: half the calls, each GEMM twice as wide."""
    ops, layer, x = backend_modules(backend).lrp, record.layer, record.input
    xt, on_device = groups[0][1][0][0], is_device(x)
    terms = [group_terms[0][1] for _, group_terms, _ in groups]
    biases = [term.bias if layer.bias is not None else None for term in terms]

    def host(name: str, modifier) -> np.ndarray:
        return layer.parameter_as(name, x.dtype, None if modifier is identity else modifier)

    def stack() -> tuple[np.ndarray, np.ndarray | None]:
        weight = np.concatenate([host("weight", term.weight) for term in terms])
        if all(b is None for b in biases):
            return deliver(weight, on_device), None
        zeros = np.zeros(len(layer.weight), x.dtype)
        bias = np.concatenate([zeros if b is None else host("bias", b) for b in biases])
        return deliver(weight, on_device), deliver(bias, on_device)

    key = ("stacked", on_device, x.dtype.str,
           tuple((term.weight, b) for term, b in zip(terms, biases, strict=True)))  # fmt: skip
    weight, bias = layer.cached(key, stack)  # made once per layer and rule
    z = layer.affine(xt, weight, bias, backend)
    shares = ops.stack([share(select) for _, _, select in groups], [c for c, _, _ in groups])
    return ops.accumulate(
        None, 1.0, xt, layer.affine_transpose(ratio(ops, shares, z, rule), weight, x, backend)
    )


def sum_step(
    record: Record, rule: EpsilonRule, relevance: np.ndarray, backend: str
) -> tuple[np.ndarray, ...]:
    """``R_i = x_i R / stab(sum_i' x_i')`` for a sum (``R_a = a R / stab(a + b)``, ``R_b = b R /
    stab(a + b)`` for a residual block's): its output (the trace's record) is the sum. An input
    broadcast in the sum (a positional embedding, a graph constant that absorbs its share) gets
    its share per sample, in the output's shape."""
    check_stabilizer(rule)
    s = ratio(backend_modules(backend).lrp, relevance, record.output, rule)
    return tuple(multiply(x, s) if x.shape == s.shape else _share(x, s) for x in record.input)


def _share(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """A broadcast input's share ``x s`` in ``s``'s shape, 0 where ``s = 0`` (a mask's ``-inf``
    where its score passes no relevance)."""
    with np.errstate(invalid="ignore"):
        return np.where(s == 0, 0, x * s)


def product_step(record: Record, rule: ProductRule, relevance: np.ndarray) -> tuple:
    """:class:`~npxai.lrp.rules.ProductRule` on ``y = a * b`` (host arrays)."""
    factors = record.input
    if rule.split == "uniform":
        return tuple(L.sum_to_shape(relevance / 2, f.shape) for f in factors)
    signal = factors[1 - rule.gate]
    if signal.shape != relevance.shape:
        raise ValueError(
            f"ProductRule on layer {record.key!r}: the signal (input {1 - rule.gate}) has shape "
            f"{signal.shape}, not the output's {relevance.shape}; the gate is input {rule.gate} "
            "(ProductRule(gate=...)), or use split='uniform'"
        )
    parts = [relevance, relevance]
    parts[rule.gate] = np.zeros_like(factors[rule.gate])
    return tuple(parts)


def layer_norm_step(
    record: Record, rule: LayerNormRule, relevance: np.ndarray, backend: str
) -> np.ndarray:
    """:class:`~npxai.lrp.rules.LayerNormRule`: ``R_in = x * (A^T (R_out / stab(y)))``, ``A^T``
    the layer's VJP with its standard deviation held fixed (its output is ``y = A x + b``)."""
    check_stabilizer(rule)
    s = ratio(backend_modules(backend).lrp, relevance, record.output, rule)
    return multiply(record.input, record.layer.vjp_fixed_std(record.input, s, backend))


def as_average_pool(record: Record) -> Record:
    """A max pool's record seen as the average pool with the same window (for AveragePoolRule)."""
    pool = record.layer
    average = L.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode)
    return Record(record.key, average, record.input, None)


def step(record: Record, rule: Rule, relevance: Signal, backend: str) -> Signal:
    """One layer's relevance step: ``R_in`` from ``R_out`` under ``rule``."""
    if isinstance(rule, PassRule):
        if isinstance(record.layer, PASS_THROUGH):  # values re-arranged: put each one back
            return record.layer.vjp(record.input, record.output, relevance, backend)
        return relevance  # an activation or a batch norm: R_in = R_out
    if isinstance(rule, GradientRule):
        if isinstance(record.layer, L.Concat):  # a repeated input's share per sample
            return record.layer.split(relevance, record.input)
        return record.layer.vjp(record.input, record.output, relevance, backend)
    if isinstance(record.layer, L.Add):
        return sum_step(record, rule, relevance, backend)
    if isinstance(record.layer, ATTENTION):
        return attention_step(record, rule, relevance, backend)
    if isinstance(rule, SoftmaxRule):
        return softmax_step(record, relevance)
    if isinstance(rule, ProductRule):
        if isinstance(record.layer, MATRIX_PRODUCTS):
            return matmul_step(record, rule, relevance, backend)
        return product_step(record, rule, relevance)
    if isinstance(rule, LayerNormRule):
        return layer_norm_step(record, rule, relevance, backend)
    if isinstance(rule, AveragePoolRule):
        record = as_average_pool(record)
    return linear_step(record, rule, relevance, backend)
