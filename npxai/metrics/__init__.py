"""Evaluation metrics of explanations: ``metric(model, x, attribution, target, ...)``, see
:mod:`npxai.metrics.base` for the shared arguments."""
