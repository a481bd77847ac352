"""The generic LRP step on the device (``backend="cuda"``): the twin of
:func:`npxai.lrp.linear_step`, term for term, with the NumPy
operators replaced by the kernels of ``kernels/cuda/lrp.py`` and the dense maps by the layer's
own device kernels.

What runs where:

- ``W'`` and ``b'``: the rule's modifier runs once on the host, and the result is sent to the
  device once and cached with the layer (:meth:`npxai.Module.device_parameter`), so any
  modifier works, a custom rule's too.
- ``x'``: the rules' element-wise modifiers (:func:`~npxai.rules.positive`, ``negative``,
  ``ones``, ``square``, ``minus_positive``, ``minus_negative``) run as device kernels. Any other
  input modifier (ZBoxRule's bounds, a custom one) runs on the host: ``x`` is copied there and
  ``x'`` sent back (ZBox sits on the first layer, whose input is the image).
- The stabilised division is :func:`npxai.rules.stabilize` by name (``sign``, ``clip``,
  ``zero``), as on every backend (:func:`npxai.lrp.check_stabilizer`).
"""

from __future__ import annotations

import numpy as np

from . import rules
from .device import add, to_device, to_host, zeros_like
from .kernels.cuda import lrp as K
from .lrp import PARAMETRIC, check_stabilizer, ratio
from .module import Record
from .rules import LinearRule, Term

#: The input modifiers with a device kernel, by the function that the rules name.
DEVICE_MODIFIERS = {getattr(rules, name): name for name in K.MODIFIERS}


def _modify_input(modifier, x):
    if modifier is rules.identity:
        return x
    if modifier in DEVICE_MODIFIERS:
        return K.modify(x, DEVICE_MODIFIERS[modifier])
    return to_device(np.ascontiguousarray(modifier(to_host(x))))


def linear_step(record: Record, rule: LinearRule, relevance):
    """``R_in = sum_g c_g sum_{t in g} x'_t * (W'_t^T (R_out / stab(z_g)))`` on device arrays."""
    check_stabilizer(rule)
    layer, x = record.layer, record.input
    parametric = isinstance(layer, PARAMETRIC)

    def forward(xt, wt, bt):
        return layer.affine(xt, wt, bt, "cuda") if parametric else layer.forward(xt, "cuda")

    def transpose(s, wt):
        return (
            layer.affine_transpose(s, wt, x, "cuda")
            if parametric
            else layer.vjp(x, None, s, "cuda")
        )

    def parameter(name: str, modifier):
        return layer.device_parameter(
            name, x.dtype, None if modifier is rules.identity else modifier
        )

    inputs: dict = {}

    def evaluate(term: Term) -> tuple | None:
        if term.input not in inputs:
            inputs[term.input] = _modify_input(term.input, x)
        xt = inputs[term.input]
        bt = None
        if parametric and term.bias is not None and layer.bias is not None:
            bt = parameter("bias", term.bias)
        if bt is None and not K.any_nonzero(xt):
            return None
        wt = parameter("weight", term.weight) if parametric else None
        return xt, wt, bt, term

    def z_of(terms: list):
        if parametric and [t[3] for t in terms] == [Term()]:
            return record.output
        z = forward(*terms[0][:3])
        for xt, wt, bt, _ in terms[1:]:
            z = add(z, forward(xt, wt, bt))
        return z

    def share(select: str | None):
        if select is None:
            return relevance
        z0 = record.output if parametric else forward(x, None, None)
        return K.select_sign(relevance, z0, select)

    total = zeros_like(x)
    for group in rule.groups():
        terms = [t for t in map(evaluate, group.terms) if t is not None]
        if not terms:
            continue
        s = ratio(share(group.select), z_of(terms), rule, "cuda")
        for xt, wt, _, _ in terms:
            K.add_product(total, group.coefficient, xt, transpose(s, wt))
    return total
