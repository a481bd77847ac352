"""Explanation methods by name: every analyzer that draws one heatmap per input, and LRP with
each preset of :mod:`npxai.composites`, for the command line and for scripts.

Names: the analyzer class names (``Gradient``, ``InputTimesGradient``, ``SmoothGrad``, ...,
:data:`ANALYZERS`) and ``LRP-<Preset>`` for each preset (``LRP-EpsilonPlusFlat``, ...). A name matches ignoring case, ``-`` and ``_``,
and the ``LRP-`` prefix may be left out: ``lrp-epsilonplus``, ``EpsilonPlus`` and
``integrated_gradients`` are all fine; ``LRP`` alone is LRP's default, ``LRP-EpsilonPlusFlat``.
``all`` is every method. CRP is left out: it draws one map per concept (see ``npxai.CRP``); so
are the wrappers (``NoiseTunnel``, ``NoiseAugmentation``, ``InterpolationAugmentation``), which
take another analyzer.

Descriptions come from the first sentence of each class's or preset's docstring, so that they
cannot drift from the code.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .analyzers import (
    LIME,
    LRP,
    Analyzer,
    DeconvNet,
    DeepLift,
    DeepLiftShap,
    GradCAM,
    Gradient,
    GradientShap,
    GuidedBackprop,
    InputTimesGradient,
    IntegratedGradients,
    KernelSHAP,
    Occlusion,
    PatternAttribution,
    PatternNet,
    ShapleyValues,
    ShapleyValueSampling,
    SmoothGrad,
)
from .analyzers.features import grid_mask
from .errors import NotFittedError
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
    DeepLift,
    DeepLiftShap,
    GradientShap,
    PatternNet,
    PatternAttribution,
    Occlusion,
    LIME,
    KernelSHAP,
    ShapleyValueSampling,
    ShapleyValues,
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
      of the model-agnostic methods;
    - ``patterns``: a file of PatternNet's patterns (:meth:`npxai.PatternNet.save`) that
      PatternNet and PatternAttribution load, or ``None``: they then fit their patterns on
      ``fit_data()``, inputs of the model's kind (``None`` if there are none: those two methods
      then raise :class:`~npxai.errors.NotFittedError`).

    The analyzers run on the current default backend (``npxai.use_backend``).
    """

    cam_layer: str
    low: float | np.ndarray = 0.0
    high: float | np.ndarray = 1.0
    seed: int = 0
    shape: tuple[int, int, int] = (3, 224, 224)
    patterns: str | os.PathLike | None = None
    fit_data: Callable[[], np.ndarray] | None = None

    @property
    def baselines(self) -> np.ndarray:
        """DeepLiftShap's and GradientShap's baselines: the black, the mid-grey and the white
        input (``low``, their mean, ``high``), shape ``(3, C, H, W)``."""
        low = np.broadcast_to(np.asarray(self.low, np.float32).reshape(-1, 1, 1), self.shape)
        high = np.broadcast_to(np.asarray(self.high, np.float32).reshape(-1, 1, 1), self.shape)
        return np.stack([low, (low + high) / 2, high])

    @property
    def superpixel_size(self) -> int:
        """The side of LIME's, KernelSHAP's and ShapleyValueSampling's square superpixels: an
        eighth of the image's, 8 x 8 = 64 features (28-pixel cells of a 224-pixel image, single
        pixels of an 8-pixel digit)."""
        return max(1, min(self.shape[1:]) // 8)

    @property
    def coarse_mask(self) -> np.ndarray:
        """ShapleyValues' features: a 3 x 3 grid of cells, 2^9 = 512 coalitions."""
        return grid_mask(self.shape, -(-max(self.shape[1:]) // 3))

    @property
    def occlusion_window(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Occlusion's window, all channels and a seventh of the image's side, and its strides,
        half the window: ``(3, 32, 32)`` and ``(3, 16, 16)`` for 224-pixel images, 13 x 13 = 169
        positions; single pixels for 8-pixel digits."""
        c, h, w = self.shape
        side = max(1, min(h, w) // 7)
        step = max(1, side // 2)
        return (c, side, side), (c, step, step)


@dataclass(frozen=True)
class Method:
    """One entry of the catalogue: its name, a one-line description, and how to build it."""

    name: str
    description: str
    build: Callable[[Module, Setting], Analyzer]


def _fitted(cls: type[PatternNet], model: Module, setting: Setting) -> PatternNet:
    """PatternNet or PatternAttribution with the setting's patterns, loaded or fitted."""
    analyzer = cls(model)
    if setting.patterns is not None:
        return analyzer.load(setting.patterns)
    if setting.fit_data is None:
        raise NotFittedError(
            f"{cls.__name__} needs patterns learnt from a data set of the model's inputs: give a "
            "pattern file (npxai explain --patterns FILE.npz, written by "
            "npxai.PatternNet(model).fit(inputs).save(FILE.npz))"
        )
    return analyzer.fit(setting.fit_data())


#: How the catalogue builds the analyzers that need more than the model. The model-agnostic
#: methods get about 200 model evaluations each (512 for exact Shapley values on 3 x 3 cells):
#: on EfficientNet-Lite0 and two cores, 7-17 s each (`npxai demo` prints them).
BUILDERS: dict[type[Analyzer], Callable[[Module, Setting], Analyzer]] = {
    GradCAM: lambda model, setting: GradCAM(model, setting.cam_layer),
    SmoothGrad: lambda model, setting: SmoothGrad(model, seed=setting.seed),
    DeepLiftShap: lambda model, setting: DeepLiftShap(model, setting.baselines),
    GradientShap: lambda model, setting: GradientShap(
        model, setting.baselines, n_samples=20, seed=setting.seed
    ),
    PatternNet: lambda model, setting: _fitted(PatternNet, model, setting),
    PatternAttribution: lambda model, setting: _fitted(PatternAttribution, model, setting),
    Occlusion: lambda model, setting: Occlusion(model, *setting.occlusion_window),
    LIME: lambda model, setting: LIME(
        model, n_samples=200, superpixel_size=setting.superpixel_size, seed=setting.seed
    ),
    KernelSHAP: lambda model, setting: KernelSHAP(
        model, 200, grid_mask(setting.shape, setting.superpixel_size), seed=setting.seed
    ),
    ShapleyValueSampling: lambda model, setting: ShapleyValueSampling(
        model, 3, grid_mask(setting.shape, setting.superpixel_size), seed=setting.seed
    ),
    ShapleyValues: lambda model, setting: ShapleyValues(model, setting.coarse_mask),
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
