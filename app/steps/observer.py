"""Observers: how a step reports what it does, entry by entry, to whoever listens.

The HTTP layer listens to count entries in metrics and in its log line; a step knows only
this protocol, so the domain stays free of Prometheus, logging policy and FastAPI.
"""

from __future__ import annotations

from typing import Protocol


class DeleteObserver(Protocol):
    """Told the fate of each entry of a delete step, as it is decided."""

    def deleted(self, path: str) -> None:
        """``path`` was removed (or vanished meanwhile, which counts the same)."""

    def absent(self, entry: str) -> None:
        """``entry`` (a path or a pattern) matched nothing, and that is not an error."""

    def failed(self, entry: str | None, code: str) -> None:
        """``entry`` (None: no single entry) made the step fail with the error ``code``."""


class NullObserver:
    """An observer that ignores everything: the default when nobody listens."""

    def deleted(self, path: str) -> None:
        """Ignored."""

    def absent(self, entry: str) -> None:
        """Ignored."""

    def failed(self, entry: str | None, code: str) -> None:
        """Ignored."""


NULL_OBSERVER = NullObserver()
