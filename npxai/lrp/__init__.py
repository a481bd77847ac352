"""Layer-wise Relevance Propagation, one file per concept:

- ``kinds.py``: the kinds of layer LRP tells apart (the one home of layer groups);
- ``rules.py``: the rules, each with its formula and the kinds it takes, and :data:`RULES`;
- ``composites.py``: which rule runs on which layer, as data; the defaults and the presets;
- ``canonize.py``: the model rewrites LRP needs (fold batch norms, strip a softmax);
- ``step.py``: the one step, generic over the rules, on every backend (its element-wise parts:
  ``npxai/reference/lrp.py``, ``kernels/cpu/lrp.py``, ``kernels/cuda/lrp.py``).

The analyzer is :class:`npxai.LRP` (``npxai/analyzers/lrp.py``); ``npxai.rules``,
``npxai.composites`` and ``npxai.canonize`` are these modules' names at the top level.
"""

from . import composites, kinds, rules
from .canonize import canonize, fold_batch_norm, strip_softmax
from .step import step

__all__ = ["canonize", "composites", "fold_batch_norm", "kinds", "rules", "step", "strip_softmax"]
