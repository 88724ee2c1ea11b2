"""What a step kind is given to run: its workspace, and how to remove entries from it.

Kinds decide *what* to remove; the runner decides *how*: in place, or moved aside into a
transaction that can still be rolled back (see ``staging.py``). A kind never calls
``Root.remove`` itself, so every kind is undoable in an atomic batch for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.sandbox import Entry, Root

# Removes entries, appending each to the list once it is removed (or found gone), so that
# what was done before a failure is known.
Remove = Callable[[Sequence[Entry], list[Entry]], None]


@dataclass(frozen=True)
class StepContext:
    """A step's workspace (None: it does not exist) and the runner's way of removing."""

    workspace: Root | None
    remove: Remove


class Incomplete(Exception):
    """A step's failure after part of its work was done: ``cause`` stopped it, and
    ``output`` is what it had done (its kind's result up to there). The runner reports
    both, so that an answer never hides a deletion that happened."""

    def __init__(self, cause: Exception, output: Any) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.output = output


def remove_in_place(workspace: Root) -> Remove:
    """Remove entries for good, now (one already gone is fine)."""

    def remove(entries: Sequence[Entry], done: list[Entry]) -> None:
        for entry in entries:
            # Entries passed the size limits when asked for, or a glob walk found them.
            workspace.remove(entry.path, limited=False)
            done.append(entry)

    return remove
