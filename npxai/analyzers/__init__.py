"""Analyzers of the gradient family. Each is built from a model and called on a batch:
``explanation = Gradient(model)(x, target=None)``."""

from .base import Analyzer, analyze
from .crp import CRP, IndexedFeatures, TopNFeatures
from .gradcam import GradCAM
from .gradient import Gradient, InputTimesGradient
from .guided import DeconvNet, GuidedBackprop
from .integrated_gradients import IntegratedGradients
from .lrp import LRP, conservation_table
from .occlusion import Occlusion
from .smoothgrad import SmoothGrad

__all__ = [
    "Analyzer",
    "CRP",
    "DeconvNet",
    "GradCAM",
    "Gradient",
    "GuidedBackprop",
    "InputTimesGradient",
    "IndexedFeatures",
    "IntegratedGradients",
    "LRP",
    "Occlusion",
    "conservation_table",
    "SmoothGrad",
    "TopNFeatures",
    "analyze",
]
