"""The analyzers: the gradient family, LRP and CRP, DeepLIFT, PatternNet and PatternAttribution,
the model-agnostic perturbation methods, and wrappers around any of them. Each is built from a
model (or an analyzer) and called on a batch: ``explanation = Gradient(model)(x, target=None)``."""

from .base import Analyzer, analyze
from .crp import CRP, IndexedFeatures, TopNFeatures
from .deeplift import DeepLift, DeepLiftShap
from .features import grid_mask
from .gradcam import GradCAM
from .gradient import Gradient, InputTimesGradient
from .gradient_shap import GradientShap
from .guided import DeconvNet, GuidedBackprop
from .integrated_gradients import IntegratedGradients
from .lime import LIME
from .lrp import LRP, conservation_table
from .noise import InterpolationAugmentation, NoiseAugmentation, NoiseTunnel
from .occlusion import Occlusion
from .pattern import PatternAttribution, PatternNet
from .shapley import KernelSHAP, ShapleyValues, ShapleyValueSampling
from .smoothgrad import SmoothGrad

__all__ = [
    "Analyzer",
    "CRP",
    "DeconvNet",
    "DeepLift",
    "DeepLiftShap",
    "GradCAM",
    "Gradient",
    "GradientShap",
    "GuidedBackprop",
    "InputTimesGradient",
    "IndexedFeatures",
    "IntegratedGradients",
    "InterpolationAugmentation",
    "KernelSHAP",
    "LIME",
    "LRP",
    "NoiseAugmentation",
    "NoiseTunnel",
    "Occlusion",
    "PatternAttribution",
    "PatternNet",
    "ShapleyValueSampling",
    "ShapleyValues",
    "conservation_table",
    "SmoothGrad",
    "TopNFeatures",
    "analyze",
    "grid_mask",
]
