"""Evaluation metrics of explanations, one call for all: ``metric(model, x, attribution, target,
...)`` (see :mod:`npxai.metrics.base` for the shared arguments), each returning a float64 array
per sample, or a result holding the curves and a per-sample ``score``.

- faithfulness (perturbation curves, :mod:`~npxai.metrics.faithfulness`): :func:`pixel_flipping`,
  :func:`region_perturbation`, :func:`deletion`, :func:`insertion`,
  :func:`symmetric_relevance_gain`; :func:`faithfulness_correlation`; :func:`road`; Captum's
  :func:`infidelity` and :func:`sensitivity_max`; the imputers of :mod:`~npxai.metrics.imputers`
  (:func:`noisy_linear_imputation` among them);
- randomisation: :func:`mprt` (the model parameter randomisation test), :func:`random_logit`,
  with the similarity measures :func:`spearman`, :func:`ssim`, :func:`hog_similarity`;
- complexity and axioms: :func:`sparseness`, :func:`complexity`, :func:`effective_complexity`,
  :func:`completeness`;
- localisation, given a ground-truth ``mask``: :func:`pointing_game`,
  :func:`relevance_mass_accuracy`, :func:`relevance_rank_accuracy`;
- :func:`evaluate`: methods against metrics, the table and curve plots of ``npxai evaluate``.
"""

from .axioms import completeness
from .complexity import complexity, effective_complexity, sparseness
from .correlation import faithfulness_correlation
from .curves import PerturbationCurve
from .evaluation import METRICS, Evaluation, evaluate
from .faithfulness import (
    RelevanceGain,
    deletion,
    insertion,
    pixel_flipping,
    region_perturbation,
    symmetric_relevance_gain,
)
from .localisation import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy
from .randomisation import MPRTResult, mprt, random_logit
from .road import noisy_linear_imputation, road
from .robustness import infidelity, sensitivity_max
from .similarity import hog, hog_similarity, spearman, ssim

__all__ = [
    "METRICS",
    "Evaluation",
    "MPRTResult",
    "PerturbationCurve",
    "RelevanceGain",
    "completeness",
    "complexity",
    "deletion",
    "effective_complexity",
    "evaluate",
    "faithfulness_correlation",
    "hog",
    "hog_similarity",
    "infidelity",
    "insertion",
    "mprt",
    "noisy_linear_imputation",
    "pixel_flipping",
    "pointing_game",
    "random_logit",
    "region_perturbation",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "road",
    "sensitivity_max",
    "sparseness",
    "spearman",
    "ssim",
    "symmetric_relevance_gain",
]
