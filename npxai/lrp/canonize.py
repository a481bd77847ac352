"""Model rewrites that LRP needs: fold batch norms into the layer before them, strip a softmax.

Both return a new model (a deep copy) and leave the original unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np

from .. import layers as L
from ..containers import Graph, Residual, Sequential
from ..module import Module, changes
from ..reference.norm import batch_norm_scale
from .kinds import BATCH_NORMS, PARAMETRIC

__all__ = [
    "fold_batch_norm",
    "canonize",
    "folded",
    "strip_softmax",
]


def fold_batch_norm(
    layer: L.Linear | L.Conv2d,
    norm: L.BatchNorm1d | L.BatchNorm2d,
    dtype: np.dtype | type | None = None,
) -> None:
    """Fold ``norm`` into ``layer`` in place: with ``s = gamma / sqrt(var + eps)``,
    ``W' = s W`` (per output channel) and ``b' = s (b - mean) + beta``, in ``dtype`` (default:
    the wider of the weight's and the running variance's)."""
    if norm.num_features != layer.weight.shape[0]:
        raise ValueError(
            f"cannot fold {norm!r} into {layer!r}: {norm.num_features} features against "
            f"{layer.weight.shape[0]} outputs"
        )
    if dtype is None:
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


def _folds(model: Module) -> Iterator[tuple[Module, str, Module, Module]]:
    """``(container, name, layer, norm)`` for every batch norm ``norm``, the child ``name`` of
    ``container``, that :func:`canonize` folds into ``layer``."""
    for _, module in model.named_modules():
        if isinstance(module, Sequential | Residual):
            if isinstance(module, Residual):
                chains = [module.chain("branch"), module.chain("shortcut")]
            else:
                chains = [list(module.named_children())]
            for chain in chains:
                for (_, first), (name, second) in zip(chain, chain[1:], strict=False):
                    if isinstance(first, PARAMETRIC) and isinstance(second, BATCH_NORMS):
                        yield module, name, first, second
        elif isinstance(module, Graph):
            for name, norm, inputs in module.nodes():
                layer = (
                    module[inputs[0]] if len(inputs) == 1 and inputs[0] != module.input else None
                )
                if (isinstance(norm, BATCH_NORMS) and isinstance(layer, PARAMETRIC)
                        and module.readers(inputs[0]) == [name]):  # fmt: skip
                    yield module, name, layer, norm


def canonize(model: Module, dtype: np.dtype | type | None = None) -> Module:
    """A copy of ``model`` with every batch norm that directly follows a Linear or Conv2d (in a
    ``Sequential``, in a residual block's branch or shortcut, or in a ``Graph`` where the batch
    norm is the only reader of the layer's output) folded into it (in ``dtype``, see
    :func:`fold_batch_norm`) and replaced by ``Identity``. The outputs do not change (up to
    rounding). Batch norms that follow anything else stay, and take a rule of their own."""
    model = copy.deepcopy(model)
    for container, name, layer, norm in list(_folds(model)):
        fold_batch_norm(layer, norm, dtype)
        container.add_module(name, L.Identity())  # in the batch norm's place
    return model


def folded(model: Module, dtype: np.dtype) -> Module:
    """The model the gradient family computes with on the numba backend for inputs of ``dtype``:
    ``canonize(model, dtype)`` (the same function; the gradient differs by rounding; folded in
    the input's dtype, so that float64 keeps its precision), made at the first call and kept
    with ``model`` until any module is changed (:func:`npxai.module.changes`; arrays changed in
    place are not seen), or ``model`` itself where no batch norm folds or ``dtype`` is neither
    float32 nor float64 (the forward pass then says so). Folding saves each batch norm's pass
    over its input, forward and backward: ``s (W x + b - mean) + beta`` is one layer with
    ``s W`` and ``s (b - mean) + beta``."""
    if dtype not in (np.float32, np.float64):
        return model
    seen, made = model._cache.get(folded, (None, {}))
    if seen != changes():
        made = {}
    key = np.dtype(dtype).str
    if key not in made:
        made[key] = canonize(model, dtype) if next(_folds(model), None) is not None else None
    model._cache[folded] = changes(), made  # after canonize's own changes to its copy
    return model if made[key] is None else made[key]


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
