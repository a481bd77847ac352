"""``npxai.canonize``'s module, kept under this name for users' code (``npxai.canonize`` itself is
the function); the rewrites live in :mod:`npxai.lrp.canonize`."""

from .lrp.canonize import *  # noqa: F403
from .lrp.canonize import __all__  # noqa: F401
