"""The suite's models as float64 torch modules, for running a peer library (Zennit, Captum) on
them, and the relevance the peer leaves at every node's inputs.

:func:`torch_model` builds the model from its description
(:class:`~npxai.conformance.models.Model`): each layer is the ``torch.nn`` class of the node's
layer name, called with the node's arguments, in a ``torch.nn.ModuleDict`` (attribute
``layers``) keyed by node name in node order, so that the peers walk the modules in the order
they run (Zennit's ``SequentialMergeBatchNorm`` folds a batch norm into the leaf module
registered before it; its first-layer composites take the first matching module; Captum collects
``model.children()`` recursively). What is not a ``torch.nn``
layer is written as each peer needs it:

- ``Add``: for Zennit a :class:`zennit.layer.Sum` module over the inputs stacked on a new last
  axis, as Zennit's ``ResNetCanonizer`` writes a residual sum (``zennit/torchvision.py``,
  ``ResNetBasicBlockCanonizer.forward``: ``torch.stack([identity, out], dim=-1)`` into a
  ``Sum``), so that Zennit's composites give it their ``Sum`` rule (``Norm``,
  ``zennit/composites.py``, ``layer_map_base``); for Captum the bare ``a + b``: Captum hooks
  modules only (``captum/attr/_core/lrp.py``, ``_get_layers``), so the gradient of the sum hands
  the full relevance to both summands;
- ``Concat`` and ``Flatten``: ``torch.cat`` and ``torch.flatten`` in the forward, for both peers.
  Captum raises a ``TypeError`` on a module type it has no rule for (``_check_and_attach_rules``);
  Zennit's composites hook neither (a ``torch.nn.Flatten`` is in no layer map), so both take the
  gradient, which hands back the relevance unchanged (a reshape) or split into the inputs' slices.

The forward hands every node fresh views (``view_as``) of the values it reads and keeps them
(``module.inputs``, ``{node: [view per input]}``) with ``retain_grad``, so that after a backward
pass each view's ``.grad`` is what reached that node's input from that node alone, after the
peer's hooks. Zennit's rules put an ``Identity`` function between the view and the module and
hook its backward (``zennit/core.py``, ``Hook.pre_forward``), so the view's gradient is the
rule's relevance. Captum's rules register tensor hooks on the module's input tensor, the view
itself (``captum/attr/_utils/lrp_rules.py``, ``PropagationRule.forward_hook``; for a ReLU
``captum/_utils/common.py``, ``_register_backward_hook``), and ``retain_grad`` sees a tensor's
gradient after every other tensor hook on it (torch >= 2). Captum hooks a tensor once however
many layers read it (``hook_registered``): its ``x * (sum of the readers' gradients)`` is the sum
of what the per-reader views get. :func:`input_gradients` reads the views in the suite's names.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..errors import StateDictError
from .models import Model

#: The peers a model is built for.
LIBRARIES = ("zennit", "captum")

#: What torch's ``load_state_dict`` wants that the suite's state dicts do not hold.
_TORCH_ONLY_BUFFERS = ("num_batches_tracked",)


def functional(layer: str, library: str) -> bool:
    """Whether a node of type ``layer`` is computed in the forward rather than by a module."""
    return layer in ("Concat", "Flatten") or (layer == "Add" and library == "captum")


@functools.cache
def _module_class() -> type:
    """The torch module class of the suite's models (made here, as torch is imported lazily)."""
    import torch

    class SuiteModel(torch.nn.Module):
        """A suite model: ``layers`` holds its modules by node name, in node order."""

        def __init__(self, model: Model, layers: dict[str, torch.nn.Module]):
            super().__init__()
            self.nodes = model.nodes
            self.layers = torch.nn.ModuleDict(layers)
            self.inputs: dict[str, list[torch.Tensor]] = {}

        def _node(self, node, views: list[torch.Tensor]) -> torch.Tensor:
            if node.layer == "Flatten":
                return torch.flatten(
                    views[0], node.arguments["start_dim"], node.arguments["end_dim"]
                )
            if node.layer == "Concat":
                return torch.cat(views, dim=node.arguments["dim"])
            if node.layer == "Add" and node.name not in self.layers:  # Captum's bare sum
                total = views[0]
                for view in views[1:]:
                    total = total + view
                return total
            if node.layer == "Add":  # Zennit's Sum over the stacked inputs
                return self.layers[node.name](torch.stack(views, dim=-1))
            return self.layers[node.name](views[0])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values = {"input": x}
            self.inputs = {}
            for node in self.nodes:
                views = [values[name].view_as(values[name]) for name in node.inputs]
                for view in views:
                    if view.requires_grad:
                        view.retain_grad()
                self.inputs[node.name] = views
                values[node.name] = self._node(node, views)
            return values[self.nodes[-1].name]

    return SuiteModel


def torch_model(model: Model, state: dict[str, np.ndarray], library: str) -> Any:
    """``model`` as a float64 ``torch.nn.Module`` in eval mode, for ``library`` (``"zennit"`` or
    ``"captum"``, see the module docstring), with ``state`` (the suite's state dict:
    ``<node>.weight``, ``<node>.bias``, ``<node>.running_mean``, ``<node>.running_var``) loaded.
    A state dict with keys the model lacks, or lacking keys it has, is a
    :class:`~npxai.errors.StateDictError` naming them."""
    import torch

    if library not in LIBRARIES:
        raise ValueError(
            f"torch_model: library must be one of {', '.join(LIBRARIES)}, got {library!r}"
        )
    layers = {}
    for node in model.nodes:
        if functional(node.layer, library):
            continue
        if node.layer == "Add":
            from zennit.layer import Sum

            layers[node.name] = Sum(dim=-1)
        else:
            arguments = {
                k: tuple(v) if isinstance(v, list) else v for k, v in node.arguments.items()
            }
            layers[node.name] = getattr(torch.nn, node.layer)(**arguments)
    module = _module_class()(model, layers).to(torch.float64).eval()
    tensors = {f"layers.{key}": torch.from_numpy(np.array(value, dtype=np.float64))
               for key, value in state.items()}  # fmt: skip
    result = module.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if k.rsplit(".", 1)[-1] not in _TORCH_ONLY_BUFFERS]
    if missing or result.unexpected_keys:
        raise StateDictError(
            f"torch_model: the state dict of model {model.name!r} does not fit it: missing "
            f"{[k.removeprefix('layers.') for k in missing]}, unexpected "
            f"{[k.removeprefix('layers.') for k in result.unexpected_keys]}"
        )
    return module


def input_gradients(module: Any, scale: Any = None) -> dict[str, np.ndarray]:
    """The gradients that reached every node's inputs in ``module``'s last backward pass, in the
    suite's names: ``"layer/<node>"`` (``"layer/<node>/<k>"`` for the ``k``-th input of a node with
    several), each multiplied by ``scale`` per sample if given (a tensor of the batch's length)."""
    arrays = {}
    for node in module.nodes:
        views = module.inputs[node.name]
        for k, view in enumerate(views):
            if view.grad is None:
                raise RuntimeError(f"input_gradients: no gradient reached node {node.name!r}")
            grad = view.grad
            if scale is not None:
                grad = grad * scale.reshape((-1,) + (1,) * (grad.dim() - 1))
            key = f"layer/{node.name}" if len(views) == 1 else f"layer/{node.name}/{k}"
            arrays[key] = grad.detach().numpy().copy()
    return arrays
