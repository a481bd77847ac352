"""The LRP analyzer."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..checks import flag
from ..device import to_host
from ..explanation import Explanation
from ..lrp import step as lrp_step
from ..lrp.canonize import canonize as fold_batch_norms
from ..lrp.composites import PRESETS, Composite, EpsilonPlusFlat
from ..lrp.kinds import BATCH_NORMS
from ..module import Module, Record, Signal, Step
from .base import Analyzer, Target


def as_composite(composite: Any) -> Composite:
    """``composite`` as a ``Composite``: itself, ``None`` -> ``EpsilonPlusFlat()`` (the default),
    a preset of :mod:`npxai.composites` by name (``"EpsilonPlus"``, the keys of
    :data:`~npxai.lrp.composites.PRESETS`) or uncalled (``npxai.composites.EpsilonPlus``), called
    without arguments. A preset that needs arguments (``EpsilonGammaBox(low, high)``) and
    anything else are errors that show the call to write."""
    if composite is None:
        return EpsilonPlusFlat()
    if isinstance(composite, Composite):
        return composite
    known = PRESETS
    if isinstance(composite, str):
        if composite not in known:
            raise ValueError(
                f"LRP: unknown composite {composite!r}; the presets are {', '.join(known)} "
                "(e.g. npxai.LRP(model, npxai.composites.EpsilonPlus()))"
            )
        name, preset = composite, known[composite]
    elif any(composite is preset for preset in known.values()):
        name, preset = composite.__name__, composite
    else:
        raise TypeError(
            "LRP: composite must be a Composite, such as npxai.composites.EpsilonPlus(), or a "
            f"preset's name ({', '.join(known)}); got {type(composite).__name__} {composite!r}"
        )
    needed = [p.name for p in inspect.signature(preset).parameters.values()
              if p.default is inspect.Parameter.empty]  # fmt: skip
    if needed:
        raise TypeError(
            f"LRP: the preset {name} needs {', '.join(needed)}: pass "
            f"npxai.composites.{name}({', '.join(f'{p}=...' for p in needed)})"
        )
    return preset()


class LRP(Analyzer):
    """Layer-wise Relevance Propagation: relevance starts at the selected output and walks back
    layer by layer, each layer applying the rule that ``composite`` assigns to it (see
    :mod:`npxai.rules` and :mod:`npxai.composites`).

    ``output_relevance="one"`` (default) starts from 1 at the selected output;
    ``output_relevance="logit"`` from the selected output's value. ``record=True`` keeps every
    layer's input relevance in ``extras["relevance"]`` and a conservation table (relevance summed
    per sample, out of and into each layer) in ``extras["conservation"]``, both NumPy on every
    backend.

    ``composite`` is a :class:`~npxai.composites.Composite` (default ``EpsilonPlusFlat()``), or a
    preset by name or uncalled (see :func:`as_composite`). ``canonize=True`` (default) folds the
    batch norms that follow a Linear or Conv2d into it (:func:`npxai.canonize`, outputs unchanged),
    as LRP's rules assume: on a copy, so the caller's model keeps its batch norms, and the
    analyzer's ``model`` is that copy (a model without batch norms is used as it is);
    ``canonize=False`` explains the model as given, unfolded batch norms under their own rule.
    """

    heatmap_preset = "attribution"

    def __init__(
        self,
        model: Module,
        composite: Composite | None = None,
        output_relevance: str = "one",
        record: bool = False,
        backend: str | None = None,
        canonize: bool = True,
    ):
        super().__init__(model, backend)
        if output_relevance not in ("one", "logit"):
            raise ValueError(
                f"LRP: output_relevance must be 'one' or 'logit', got {output_relevance!r}"
            )
        if not isinstance(canonize, bool):
            raise TypeError(f"LRP: canonize must be True or False, got {canonize!r}")
        self.composite = as_composite(composite)
        if canonize and any(isinstance(m, BATCH_NORMS) for _, m in self.model.named_modules()):
            self.model = fold_batch_norms(self.model)
        self.rules = self.composite.assign(self.model)
        self.output_relevance, self.record = output_relevance, flag(record, "LRP: record")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        relevances: dict[str, Signal] = {}
        table: list[tuple[str, str, str, np.ndarray, np.ndarray]] = []

        def make_step(backend: str) -> Step:
            def step(record: Record, relevance: Signal) -> Signal:
                result = lrp_step(record, self.rules[record.key], relevance, backend)
                if self.record:  # on the cuda backend: read on the host, layer by layer
                    relevances[record.key] = host = to_host(result)
                    into = (  # a graph constant without a batch axis absorbs what it gets
                        sum(
                            _per_sample(r)
                            for r in host
                            if r.shape[:1] == relevance.shape[:1] and r.ndim == relevance.ndim
                        )
                        if isinstance(host, tuple)
                        else _per_sample(host)
                    )
                    table.append((record.key, type(record.layer).__name__, repr(self.rules[record.key]),
                                  _per_sample(to_host(relevance)), into))  # fmt: skip
                return result

            return step

        trace, indices, relevance = self.backprop(
            x, target, make_step, scale_by_output=self.output_relevance == "logit"
        )
        extras = {"relevance": relevances, "conservation": table[::-1]} if self.record else {}
        return self.explanation(relevance, trace, indices, **extras)

    def __repr__(self) -> str:
        rows = [
            (key, type(layer).__name__)
            for key, layer in self.model.named_modules()
            if key in self.rules
        ]
        width = max([len(k) for k, _ in rows] + [5])
        lines = [f"LRP({self.composite.name}, output_relevance={self.output_relevance!r})"]
        lines += [f"  {key:<{width}}  {kind:<18} {self.rules[key]!r}" for key, kind in rows]
        return "\n".join(lines)


def _per_sample(r: np.ndarray) -> np.ndarray:
    return r.reshape(len(r), -1).sum(axis=1)


def conservation_table(explanation: Explanation, sample: int = 0) -> str:
    """The recorded conservation table of one sample, as text: layer, rule, relevance out of the
    layer (towards the output) and into it (towards the input)."""
    if "conservation" not in explanation.extras:
        raise ValueError("the explanation has no conservation table; run LRP(..., record=True)")
    lines = [f"{'layer':<24} {'type':<18} {'R out':>12} {'R in':>12}  rule"]
    for key, kind, rule, out, into in explanation.extras["conservation"]:
        lines.append(f"{key:<24} {kind:<18} {out[sample]:>12.6g} {into[sample]:>12.6g}  {rule}")
    return "\n".join(lines)
