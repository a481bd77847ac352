"""A one-line progress bar on standard error for analyzers that take many passes."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Writes ``"{label}: {done}/{total} batches"`` to ``stream`` (default ``sys.stderr``, looked up
    when the bar is made), rewriting the line in place with ``\\r``, and ends it with a newline.
    It writes only if ``enabled``, ``total > 1`` and the stream is a terminal (``isatty()``), so
    logs, pipes and notebooks that capture standard error stay clean."""

    def __init__(self, label: str, total: int, enabled: bool = True, stream: TextIO | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.label, self.total = label, total
        self.active = bool(enabled) and total > 1 and _is_terminal(self.stream)

    def update(self, done: int) -> None:
        """Show that ``done`` of the ``total`` batches are finished."""
        if self.active:
            self.stream.write(f"\r{self.label}: {done}/{self.total} batches")
            self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.active:
            self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def check_progress(progress: object, owner: str) -> bool:
    """``progress`` if it is a bool, else a ``TypeError`` naming ``owner``'s parameter."""
    if not isinstance(progress, bool):
        raise TypeError(f"{owner}: progress must be True or False, got {progress!r}")
    return progress
