"""``python -m npxai``: the ``npxai`` command line (:mod:`npxai.cli`); without a command it
prints the help. ``python -m npxai demo`` is the place to start."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
