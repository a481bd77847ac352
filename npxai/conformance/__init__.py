"""npxai as the oracle: a conformance suite any explanation library can run, and a check that
says where and why its results differ (``docs/conformance.md``).

- :func:`export` writes the suite: small models as ONNX and safetensors files, inputs, and per
  case the expected input relevance and every layer's relevance in float64, with a JSON manifest;
- :func:`run` answers it with npxai or an installed peer (Zennit, Captum) in the results format;
- :func:`check` compares results with the suite, case by case, names the first layer (from the
  output) where they part and the known convention that the other implementation follows.

Not imported by ``import npxai``: ``from npxai import conformance``.
"""

from .checker import Report, check, relative_difference
from .runner import IMPLEMENTATIONS, run
from .suite import VERSION, Suite, export, write_results

__all__ = [
    "IMPLEMENTATIONS",
    "VERSION",
    "Report",
    "Suite",
    "check",
    "export",
    "relative_difference",
    "run",
    "write_results",
]
