"""``npxai.rules``: the LRP rules, kept under this name for users' code; they live in
:mod:`npxai.lrp.rules`."""

from .lrp.rules import *  # noqa: F403
from .lrp.rules import __all__  # noqa: F401
