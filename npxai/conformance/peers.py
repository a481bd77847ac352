"""The suite run through the peer libraries themselves: Zennit 0.5.1 and Captum 0.9, in float64
torch, on the models of :mod:`npxai.conformance.torch_model`. :func:`run` answers every case of
the library's convention as the case's ``peer`` entry spells it, in the suite's array names:
``"input"``, and for LRP ``"layer/<node>"`` (``"layer/<node>/<k>"``), the relevance at every
node's input.

Zennit (the ``zennit`` convention):

- LRP: ``zennit.attribution.Gradient(model, composite)`` called with ``attr_output`` the one-hot
  vector at the targets, which is the output relevance (``zennit/attribution.py``,
  ``Gradient.grad``: ``grad_outputs=(attr_output_fn(output),)``). The composite is the named
  preset of ``zennit.composites`` (``peer["composite"]``; ``EpsilonGammaBox`` with ``low`` and
  ``high`` the tensors of the input's shape filled with :data:`~npxai.conformance.cases.LOW` and
  ``HIGH``) or, for the rule grid (``peer["rule"]``), a ``NameMapComposite`` giving each node the
  ``zennit.rules`` class ``peer["rules"]`` names, with its arguments (``None``: no hook, the
  gradient; so are ``Flatten`` and ``Concat``, which are not modules here,
  :mod:`~npxai.conformance.torch_model`).
  Every composite gets the canonizer ``SequentialMergeBatchNorm`` (``zennit/canonizers.py``,
  ``MergeBatchNorm.merge_batch_norm``: the batch norm folded into the module before it and left
  computing ``x / sqrt(1 + eps)``), the suite's ``batch_norm="zennit"``; it changes nothing in a
  model without batch norms.
- ``Gradient``: ``zennit.attribution.Gradient(model)``; ``IntegratedGradients``:
  ``zennit.attribution.IntegratedGradients(model, n_iter=n)``, the zero baseline, a right Riemann
  sum (``torch.linspace(1 / n, 1, n)``, ``zennit/attribution.py``, ``IntegratedGradients.forward``),
  both with the one-hot ``attr_output``.
- Per-layer relevances: the gradients at the nodes' inputs (Zennit's relevance is its modified
  gradient).

Captum (the ``captum`` convention):

- LRP: ``captum.attr.LRP(model).attribute(x, target)`` with ``module.rule`` set to the
  ``captum.attr._utils.lrp_rules`` class ``peer["rules"]`` names, per module (``None``: no
  rule; Captum then gives a ReLU its pass-through, ``captum/attr/_core/lrp.py``,
  ``_check_and_attach_rules`` and ``SUPPORTED_NON_LINEAR_LAYERS``); the ``lrp_default`` cases
  (``peer["composite"] == "LRP(model)"``) set no rule at all, so that Captum's own defaults run
  (``SUPPORTED_LAYERS_WITH_RULES``: ``EpsilonRule()`` on every layer it supports).
  ``LRP.attribute`` deletes the rules when it returns (``_remove_rules``, also the ones set by
  hand), so each case builds its model afresh. The output
  relevance is the selected logit: Captum backpropagates from 1 and multiplies the input's
  "normalised relevance" by the logit of the unmodified model (``LRP.attribute``:
  ``normalized_relevance * output.reshape(...)``).
- Per-layer relevances: the gradients at the nodes' inputs, normalised in the same way, are
  multiplied by the selected logit per sample, as Captum's own ``LayerLRP`` does with the
  relevances its rules record (``captum/attr/_core/layer/layer_lrp.py``,
  ``_get_single_output_relevance``).
- ``Saliency(model).attribute(x, target, abs=...)``, ``InputXGradient``,
  ``IntegratedGradients(model).attribute(x, baselines, target, n_steps, method)`` (its step sizes
  are float32, ``captum/attr/_core/integrated_gradients.py``:
  ``torch.tensor(step_sizes).float()``, hence the cases' looser tolerance) and
  ``LayerGradCam(model, layer).attribute(x, target, relu_attributions=...)`` with the node's
  module as the layer.

Nothing here changes torch's global state (dtype, threads, grad mode outside a block).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import load
from .cases import HIGH, LOW
from .models import Model
from .suite import Suite
from .torch_model import LIBRARIES, functional, input_gradients, torch_model

#: Each library's gradient-family methods, as the cases' ``peer["method"]`` names them.
_METHODS = {
    "zennit": ("Gradient", "IntegratedGradients"),
    "captum": ("Saliency", "InputXGradient", "IntegratedGradients", "LayerGradCam"),
}

#: The output relevance and the batch-norm handling each library's LRP runner computes.
_LRP_CONVENTION = {"zennit": ("one", "zennit"), "captum": ("logit", "unfolded")}


def _rule_classes(library: str) -> Any:
    """The module holding the library's LRP rule classes."""
    if library == "zennit":
        import zennit.rules

        return zennit.rules
    from captum.attr._utils import lrp_rules

    return lrp_rules


def _unsupported(case: dict, model: Model, library: str) -> str | None:
    """Why the runner cannot compute ``case`` as its library would (``None``: it can)."""
    peer = case["peer"]
    if case["method"] != "LRP":
        if peer.get("method") not in _METHODS[library]:
            return f"no {library} runner for method {peer.get('method')!r}"
        return None
    if (case["output_relevance"], case["batch_norm"]) != _LRP_CONVENTION[library]:
        return (f"the {library} runner computes LRP with (output relevance, batch norms) = "
                f"{_LRP_CONVENTION[library]}, the case asks for "
                f"{(case['output_relevance'], case['batch_norm'])}")  # fmt: skip
    if library == "zennit" and "rule" not in peer:
        import zennit.composites

        if getattr(zennit.composites, peer.get("composite", ""), None) not in (
            zennit.composites.COMPOSITES.values()
        ):
            return f"zennit.composites has no composite {peer.get('composite')!r}"
    rules = peer.get("rules", {})
    if set(rules) != {node.name for node in model.nodes}:
        names = [node.name for node in model.nodes]
        return f"peer['rules'] names {sorted(rules)}, not the model's nodes {names}"
    classes = _rule_classes(library)
    for node in model.nodes:
        rule = rules[node.name]
        if rule is not None and not isinstance(getattr(classes, rule[0], None), type):
            return f"node {node.name}: {classes.__name__} has no rule {rule[0]!r}"
        if functional(node.layer, library) and rule is not None:
            return f"node {node.name}: a {node.layer} is no module here, so it takes no rule {rule}"
        if library == "captum" and rule is None and node.layer != "ReLU":
            if not functional(node.layer, library):  # Captum would give it its default rule
                return f"node {node.name}: Captum cannot leave a {node.layer} without a rule"
    return None


def _zennit(module: Any, case: dict, x: np.ndarray, target: list[int]) -> dict[str, np.ndarray]:
    import torch
    from zennit import attribution, canonizers, composites

    peer = case["peer"]
    xt = torch.from_numpy(x.copy())

    def one_hot(output: torch.Tensor) -> torch.Tensor:
        return torch.eye(output.shape[1], dtype=output.dtype)[target]

    if case["method"] != "LRP":
        if peer["method"] == "Gradient":
            attributor = attribution.Gradient(module)
        else:
            attributor = attribution.IntegratedGradients(module, n_iter=peer["n_iter"])
        return {"input": attributor(xt, one_hot)[1].numpy()}
    merge = [canonizers.SequentialMergeBatchNorm()]
    if "rule" in peer:
        classes = _rule_classes("zennit")
        composite = composites.NameMapComposite(
            [((f"layers.{node}",), getattr(classes, rule[0])(**rule[1]))
             for node, rule in peer["rules"].items() if rule is not None],
            canonizers=merge,
        )  # fmt: skip
    elif peer["composite"] == "EpsilonGammaBox":
        composite = composites.EpsilonGammaBox(torch.full_like(xt, LOW), torch.full_like(xt, HIGH),
                                               canonizers=merge)  # fmt: skip
    else:
        composite = getattr(composites, peer["composite"])(canonizers=merge)
    with attribution.Gradient(module, composite) as attributor:
        _, relevance = attributor(xt, one_hot)
    return {"input": relevance.numpy(), **input_gradients(module)}


def _captum(module: Any, case: dict, x: np.ndarray, target: list[int]) -> dict[str, np.ndarray]:
    import torch
    from captum import attr

    peer = case["peer"]
    xt = torch.from_numpy(x.copy()).requires_grad_()
    if case["method"] == "LRP":
        if peer.get("composite") != "LRP(model)":
            classes = _rule_classes("captum")
            for node, rule in peer["rules"].items():
                if rule is not None:
                    module.layers[node].rule = getattr(classes, rule[0])(**rule[1])
        with torch.no_grad():
            logit = module(xt)[torch.arange(len(target)), target]
        attribution = attr.LRP(module).attribute(xt, target=target)
        return {"input": attribution.detach().numpy(), **input_gradients(module, logit)}
    method = peer["method"]
    if method == "Saliency":
        attribution = attr.Saliency(module).attribute(xt, target=target, abs=peer["abs"])
    elif method == "InputXGradient":
        attribution = attr.InputXGradient(module).attribute(xt, target=target)
    elif method == "IntegratedGradients":
        attribution = attr.IntegratedGradients(module).attribute(
            xt, baselines=peer["baselines"], target=target, n_steps=peer["n_steps"],
            method=peer["method_name"])  # fmt: skip
    else:
        attribution = attr.LayerGradCam(module, module.layers[peer["layer"]]).attribute(
            xt, target=target, relu_attributions=peer["relu_attributions"])  # fmt: skip
    return {"input": attribution.detach().numpy()}


def run(suite: Suite, library: str) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """Every case of ``suite`` whose ``peer["library"]`` is ``library`` (``"zennit"`` or
    ``"captum"``) computed by that library, as the module docstring says. Returns the answers,
    ``{case: {array name: array}}`` in the suite's names, and the cases not run, ``{case:
    why}``."""
    if library not in LIBRARIES:
        raise ValueError(f"run: library must be one of {', '.join(LIBRARIES)}, got {library!r}")
    answer = _zennit if library == "zennit" else _captum
    results, not_run, states = {}, {}, {}
    for name, case in suite.cases.items():
        if case["peer"]["library"] != library:
            continue
        model = suite.model(case["model"])
        reason = _unsupported(case, model, library)
        if reason is not None:
            not_run[name] = reason
            continue
        if model.name not in states:
            states[model.name] = load(
                suite.folder / suite.manifest["models"][model.name]["weights"]
            )
        x, target, _ = suite.batch(case)
        results[name] = answer(torch_model(model, states[model.name], library), case, x, target)
    return results, not_run
