"""Explanation methods by name: every analyzer that draws one heatmap per input, and LRP with
each preset of :mod:`npxai.composites`, for the command line and for scripts.

Names: the analyzer class names (``Gradient``, ``InputTimesGradient``, ``SmoothGrad``,
``IntegratedGradients``, ``GradCAM``, ``GuidedBackprop``, ``DeconvNet``) and ``LRP-<Preset>``
for each preset (``LRP-EpsilonPlusFlat``, ...). A name matches ignoring case, ``-`` and ``_``,
and the ``LRP-`` prefix may be left out: ``lrp-epsilonplus``, ``EpsilonPlus`` and
``integrated_gradients`` are all fine; ``LRP`` alone is LRP's default, ``LRP-EpsilonPlusFlat``.
``all`` is every method. CRP is left out: it draws one map per concept (see ``npxai.CRP``).

Descriptions come from the first sentence of each class's or preset's docstring, so that they
cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .analyzers import (
    LRP,
    Analyzer,
    DeconvNet,
    GradCAM,
    Gradient,
    GuidedBackprop,
    InputTimesGradient,
    IntegratedGradients,
    Occlusion,
    SmoothGrad,
)
from .lrp import composites, rules
from .module import Module

#: The analyzers that the catalogue offers besides LRP, in the order they are listed.
ANALYZERS: tuple[type[Analyzer], ...] = (
    Gradient,
    InputTimesGradient,
    SmoothGrad,
    IntegratedGradients,
    GradCAM,
    GuidedBackprop,
    DeconvNet,
    Occlusion,
)


def summary(obj: object) -> str:
    """The first sentence of ``obj``'s docstring on one line, without reST markup."""
    paragraph = " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
    paragraph = re.sub(r":\w+:`~?([^`]*)`", r"\1", paragraph).replace("``", "")
    end = re.search(r"(?<!i\.e)(?<!e\.g)\.\s", paragraph)
    return paragraph if end is None else paragraph[: end.start() + 1]


def presets() -> dict[str, Callable[..., composites.Composite]]:
    """Every LRP preset by name, in the order the catalogue lists them
    (:data:`npxai.lrp.composites.PRESETS`)."""
    return dict(composites.PRESETS)


def rule_classes() -> dict[str, type[rules.Rule]]:
    """Every LRP rule by name (:data:`npxai.lrp.rules.RULES`)."""
    return {rule.__name__: rule for rule in rules.RULES}


@dataclass(frozen=True)
class Setting:
    """What some methods need to know about the model and its inputs.

    - ``cam_layer``: GradCAM's feature layer, a key of ``model.named_modules()``;
    - ``low``, ``high``: the smallest and largest values an input can take (scalars or arrays
      broadcastable to the input), the box of ``EpsilonGammaBox``'s first layer;
    - ``seed``: the seed of every method that draws random numbers, so that a run can be
      repeated;
    - ``shape``: the shape of one input ``(C, H, W)``, which sizes the windows and superpixels
      of the model-agnostic methods.

    The analyzers run on the current default backend (``npxai.use_backend``).
    """

    cam_layer: str
    low: float | np.ndarray = 0.0
    high: float | np.ndarray = 1.0
    seed: int = 0
    shape: tuple[int, int, int] = (3, 224, 224)

    @property
    def occlusion_window(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Occlusion's window, all channels and an eighth of the image's side, and its strides,
        half the window: ``(3, 28, 28)`` and ``(3, 14, 14)`` for 224-pixel images, 15 x 15 = 225
        positions; single pixels for 8-pixel digits."""
        c, h, w = self.shape
        side = max(1, min(h, w) // 8)
        step = max(1, side // 2)
        return (c, side, side), (c, step, step)


@dataclass(frozen=True)
class Method:
    """One entry of the catalogue: its name, a one-line description, and how to build it."""

    name: str
    description: str
    build: Callable[[Module, Setting], Analyzer]


#: How the catalogue builds the analyzers that need more than the model.
BUILDERS: dict[type[Analyzer], Callable[[Module, Setting], Analyzer]] = {
    GradCAM: lambda model, setting: GradCAM(model, setting.cam_layer),
    SmoothGrad: lambda model, setting: SmoothGrad(model, seed=setting.seed),
    Occlusion: lambda model, setting: Occlusion(model, *setting.occlusion_window),
}


def _analyzer_method(cls: type[Analyzer]) -> Method:
    return Method(cls.__name__, summary(cls), BUILDERS.get(cls, lambda model, setting: cls(model)))


def _lrp_method(name: str, preset: Callable[..., composites.Composite]) -> Method:
    def build(model: Module, setting: Setting) -> Analyzer:
        box = inspect.signature(preset).parameters.keys() >= {"low", "high"}
        composite = preset(low=setting.low, high=setting.high) if box else preset()
        return LRP(model, composite)

    return Method(f"LRP-{name}", summary(preset), build)


def catalogue() -> dict[str, Method]:
    """Every method by its canonical name: the analyzers, then LRP with each preset."""
    methods = [_analyzer_method(cls) for cls in ANALYZERS]
    methods += [_lrp_method(name, preset) for name, preset in presets().items()]
    return {method.name: method for method in methods}


def _folded_name(name: str) -> str:
    """``name`` as names are matched: lower case, without ``-`` and ``_``."""
    return name.lower().replace("-", "").replace("_", "")


def lookup(names: Iterable[str]) -> list[Method]:
    """The methods that ``names`` ask for, in order and without repeats. Each name may hold
    several, comma-separated; see the module docstring for how names match. Raises
    ``ValueError`` naming the unknown name and listing the known ones."""
    known = catalogue()
    aliases = {_folded_name(name): [name] for name in known}
    aliases.update({_folded_name(name.removeprefix("LRP-")): [name] for name in known})
    aliases[_folded_name("LRP")] = ["LRP-EpsilonPlusFlat"]  # LRP's default composite
    aliases["all"] = list(known)
    chosen: list[str] = []
    for part in (p.strip() for name in names for p in name.split(",")):
        if not part:
            continue
        if _folded_name(part) not in aliases:
            raise ValueError(
                f"unknown method {part!r}; known methods: {', '.join(known)} (or 'all'; case, "
                "'-' and '_' are ignored, and the 'LRP-' prefix may be left out)"
            )
        chosen += [name for name in aliases[_folded_name(part)] if name not in chosen]
    if not chosen:
        raise ValueError("no method given; known methods: " + ", ".join(known))
    return [known[name] for name in chosen]
