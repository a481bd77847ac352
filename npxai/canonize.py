"""Model rewrites that LRP needs: fold batch norms into the layer before them, strip a softmax.

Both return a new model (a deep copy) and leave the original unchanged.
"""

from __future__ import annotations

import copy

import numpy as np

from . import layers as L
from .containers import Residual, Sequential
from .module import Module
from .reference.norm import batch_norm_scale

FOLDABLE = (L.Linear, L.Conv2d)


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
    layer._parameters["bias"] = scale * (bias - norm.running_mean.astype(dtype)) + shift


def _fold_chain(container: Module, names: list[str]) -> None:
    for before, after in zip(names, names[1:], strict=False):
        first, second = container._modules[before], container._modules[after]
        if isinstance(first, FOLDABLE) and isinstance(second, L.BatchNorm1d | L.BatchNorm2d):
            fold_batch_norm(first, second)
            container._modules[after] = L.Identity()


def canonize(model: Module) -> Module:
    """A copy of ``model`` with every batch norm that directly follows a Linear or Conv2d (in a
    ``Sequential``, or in a residual block's branch or shortcut) folded into it and replaced by
    ``Identity``. The outputs do not change (up to rounding). Batch norms that follow anything
    else stay, and take a rule of their own."""
    model = copy.deepcopy(model)
    for _, module in model.named_modules():
        if isinstance(module, Sequential):
            _fold_chain(module, list(module._modules))
        elif isinstance(module, Residual):
            for part in ("branch", "shortcut"):
                _fold_chain(module, module._parts[part])
    return model


def strip_softmax(model: Module) -> Module:
    """A copy of ``model`` without its trailing ``Softmax`` (LRP explains the logits)."""
    model = copy.deepcopy(model)
    container = model
    while isinstance(container, Sequential) and len(container):
        last_name = list(container._modules)[-1]
        last = container._modules[last_name]
        if isinstance(last, L.Softmax):
            del container._modules[last_name]
            return model
        container = last
    return model
