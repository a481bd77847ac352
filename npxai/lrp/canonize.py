"""Model rewrites that LRP needs: fold batch norms into the layer before them, strip a softmax.

Both return a new model (a deep copy) and leave the original unchanged.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import layers as L
from ..containers import Graph, Residual, Sequential
from ..module import Module
from ..reference.norm import batch_norm_scale
from .kinds import BATCH_NORMS, PARAMETRIC

__all__ = [
    "fold_batch_norm",
    "canonize",
    "strip_softmax",
]


def fold_batch_norm(layer: L.Linear | L.Conv2d, norm: L.BatchNorm1d | L.BatchNorm2d) -> None:
    """Fold ``norm`` into ``layer`` in place: with ``s = gamma / sqrt(var + eps)``,
    ``W' = s W`` (per output channel) and ``b' = s (b - mean) + beta``."""
    if norm.num_features != layer.weight.shape[0]:
        raise ValueError(
            f"cannot fold {norm!r} into {layer!r}: {norm.num_features} features against "
            f"{layer.weight.shape[0]} outputs"
        )
    dtype = np.result_type(layer.weight.dtype, norm.running_var.dtype)
    scale = batch_norm_scale(
        norm.running_var.astype(dtype),
        None if norm.weight is None else norm.weight.astype(dtype),
        norm.eps,
    )
    bias = np.zeros(len(scale), dtype) if layer.bias is None else layer.bias.astype(dtype)
    shift = np.zeros_like(scale) if norm.bias is None else norm.bias.astype(dtype)
    layer.weight = layer.weight.astype(dtype) * scale.reshape(-1, *(1,) * (layer.weight.ndim - 1))
    layer.register_parameter("bias", scale * (bias - norm.running_mean.astype(dtype)) + shift)


def _fold_chain(container: Module, chain: list[tuple[str, Module]]) -> None:
    for (_, first), (name, second) in zip(chain, chain[1:], strict=False):
        if isinstance(first, PARAMETRIC) and isinstance(second, BATCH_NORMS):
            fold_batch_norm(first, second)
            container.add_module(name, L.Identity())  # in the batch norm's place


def canonize(model: Module) -> Module:
    """A copy of ``model`` with every batch norm that directly follows a Linear or Conv2d (in a
    ``Sequential``, in a residual block's branch or shortcut, or in a ``Graph`` where the batch
    norm is the only reader of the layer's output) folded into it and replaced by ``Identity``.
    The outputs do not change (up to rounding). Batch norms that follow anything else stay, and
    take a rule of their own."""
    model = copy.deepcopy(model)
    for _, module in model.named_modules():
        if isinstance(module, Sequential):
            _fold_chain(module, list(module.named_children()))
        elif isinstance(module, Residual):
            for part in ("branch", "shortcut"):
                _fold_chain(module, module.chain(part))
        elif isinstance(module, Graph):
            for name, norm, inputs in module.nodes():
                layer = (
                    module[inputs[0]] if len(inputs) == 1 and inputs[0] != module.input else None
                )
                if (isinstance(norm, BATCH_NORMS) and isinstance(layer, PARAMETRIC)
                        and module.readers(inputs[0]) == [name]):  # fmt: skip
                    fold_batch_norm(layer, norm)
                    module.add_module(name, L.Identity())
    return model


def strip_softmax(model: Module) -> Module:
    """A copy of ``model`` without its trailing ``Softmax`` (LRP explains the logits)."""
    model = copy.deepcopy(model)
    container = model
    while isinstance(container, Sequential) and len(container):
        if isinstance(container[-1], L.Softmax):
            del container[-1]
            return model
        container = container[-1]
    return model
