"""``npxai conformance run``: the suite through one implementation, its results written."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from pathlib import Path

from ..errors import MissingExtraError
from .suite import Suite, npxai_results, write_results

#: The implementations ``run`` knows: npxai itself, and the installed peers.
IMPLEMENTATIONS = ("npxai", "zennit", "captum")


def run(
    suite: Suite | str | os.PathLike,
    implementation: str,
    out: str | os.PathLike,
    convention: str | None = None,
) -> Path:
    """Run ``suite`` (a :class:`Suite` or its folder) through ``implementation`` and write its
    results into ``out`` (:func:`~npxai.conformance.suite.write_results`). ``"npxai"`` answers
    every case (or those of ``convention``) from the suite's files; ``"zennit"`` and ``"captum"``
    (torch and the peer installed, as in npxai's test extra) the cases of their own convention.
    Returns ``out``."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"conformance run: unknown implementation {implementation!r}; choose one of "
            f"{', '.join(IMPLEMENTATIONS)}"
        )
    if implementation != "npxai" and convention is not None:
        raise ValueError(
            f"conformance run: convention= is for npxai only; {implementation} answers the cases "
            f"of its own convention"
        )
    suite = suite if isinstance(suite, Suite) else Suite(suite)
    if implementation == "npxai":
        from .. import __version__

        return write_results(out, f"npxai {__version__}", npxai_results(suite, convention), {})
    try:
        importlib.import_module(implementation)
        from . import peers
    except ImportError as error:
        raise MissingExtraError(
            f"conformance run --implementation {implementation} needs torch and {implementation} "
            f'({error}); they are in npxai\'s test extra: pip install -e ".[test]"'
        ) from None
    results, not_run = peers.run(suite, implementation)
    version = importlib.metadata.version(implementation)
    return write_results(out, f"{implementation} {version}", results, not_run)
