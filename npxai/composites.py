"""``npxai.composites``: LRP's composites and presets, kept under this name for users' code; they
live in :mod:`npxai.lrp.composites`."""

from .lrp.composites import *  # noqa: F403
from .lrp.composites import __all__  # noqa: F401
