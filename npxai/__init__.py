"""npxai: framework-free explanations of neural-network predictions.

A readable NumPy reference for every operation (``npxai.reference``), layers and models named as
in ``torch.nn`` (``npxai.layers``, ``npxai.models``), weights loaded without torch (``npxai.load``),
ImageNet class names, photos and preprocessing (``npxai.imagenet``).
"""

from . import compat, composites, imagenet, layers, lrp, models, reference, rules  # noqa: E402
from .analyzers import (
    CRP,
    LRP,
    Analyzer,
    DeconvNet,
    DeepLift,
    DeepLiftShap,
    GradCAM,
    Gradient,
    GradientShap,
    GuidedBackprop,
    IndexedFeatures,
    InputTimesGradient,
    IntegratedGradients,
    InterpolationAugmentation,
    NoiseAugmentation,
    NoiseTunnel,
    Occlusion,
    PatternAttribution,
    PatternNet,
    SmoothGrad,
    TopNFeatures,
    analyze,
    conservation_table,
)
from .backend import get_backend, set_backend, use_backend
from .canonize import canonize, strip_softmax
from .containers import Graph, Residual, Sequential
from .convert import from_torch
from .errors import (
    BackendError,
    ConversionError,
    LayerInputError,
    LoadError,
    LRPCompatibilityError,
    MissingExtraError,
    MissingFileError,
    NotFittedError,
    PatternFileError,
    StateDictError,
    UnknownModelError,
    UnsafePickleError,
    UnsupportedLayerError,
    UsageError,
)
from .explanation import Explanation
from .gradient import gradient
from .heatmaps import concept_grid, heatmap, overlay, save_heatmap
from .init import manual_seed
from .io import load
from .module import Layer, Module, Record, Trace
from .onnx import from_onnx

__version__ = "0.1.0"

__all__ = [
    "Analyzer",
    "CRP",
    "DeconvNet",
    "DeepLift",
    "DeepLiftShap",
    "Explanation",
    "GradCAM",
    "Gradient",
    "GradientShap",
    "GuidedBackprop",
    "IndexedFeatures",
    "InputTimesGradient",
    "IntegratedGradients",
    "InterpolationAugmentation",
    "NoiseAugmentation",
    "NoiseTunnel",
    "Occlusion",
    "PatternAttribution",
    "PatternNet",
    "LRP",
    "TopNFeatures",
    "compat",
    "composites",
    "conservation_table",
    "rules",
    "SmoothGrad",
    "analyze",
    "canonize",
    "strip_softmax",
    "BackendError",
    "get_backend",
    "set_backend",
    "use_backend",
    "ConversionError",
    "Layer",
    "LayerInputError",
    "LoadError",
    "LRPCompatibilityError",
    "lrp",
    "MissingExtraError",
    "MissingFileError",
    "NotFittedError",
    "PatternFileError",
    "Module",
    "Record",
    "Graph",
    "Residual",
    "Sequential",
    "StateDictError",
    "Trace",
    "UnknownModelError",
    "UnsafePickleError",
    "UnsupportedLayerError",
    "UsageError",
    "from_onnx",
    "from_torch",
    "gradient",
    "concept_grid",
    "heatmap",
    "imagenet",
    "overlay",
    "save_heatmap",
    "layers",
    "load",
    "manual_seed",
    "models",
    "reference",
]
