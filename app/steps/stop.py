"""Stopping step work at a safe point, for a shutdown that must not leave things half done.

Whoever runs step work (the HTTP layer's pool) hands it a ``Stop`` and may ``request`` a
stop, then ``hurry`` it. The runner and the removals check it at safe points only:

* ``requested``: between two entries and between two steps. The entry being removed is
  finished first, so a plain delete stops with every entry either wholly deleted or
  untouched, and an atomic batch rolls back everything it staged.
* ``urgent`` (after ``hurry``): also inside an entry, after any file of a directory tree
  is removed. That tree is then partly deleted, and reported so.

Rolling back, committing and journaling are never cut short: they are what makes the
stop safe. A stop surfaces as ``errors.Stopped``, which lists what was deleted.
"""

from __future__ import annotations

import threading

from app.sandbox.remove import Pace
from app.steps.errors import Stopped


class Stop:
    """A request to stop step work: ``requested`` first, ``urgent`` once hurried."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._urgent = threading.Event()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def urgent(self) -> bool:
        return self._urgent.is_set()

    def request(self) -> None:
        """Stop at the next safe point between entries or steps."""
        self._requested.set()

    def hurry(self) -> None:
        """Stop at the next file removed, even inside a directory tree."""
        self._requested.set()
        self._urgent.set()


class _Never(Stop):
    """A stop nobody can request: for callers that never stop work early."""

    def request(self) -> None:
        raise TypeError("NEVER cannot be requested")

    def hurry(self) -> None:
        raise TypeError("NEVER cannot be hurried")


NEVER: Stop = _Never()


def urgent_pace(stop: Stop) -> Pace:
    """A removal's pace (see ``remove_tree``) that raises ``Stopped`` once ``stop`` is
    urgent."""

    def pace() -> None:
        if stop.urgent:
            raise Stopped()

    return pace
