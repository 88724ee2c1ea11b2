"""What a step kind is given to run: its workspace, and how to remove entries from it.

Kinds decide *what* to remove; the runner decides *how*: in place, or moved aside into a
transaction that can still be rolled back (see ``staging.py``). A kind never calls
``Root.remove`` itself, so every kind is undoable in an atomic batch for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.sandbox import Entry, Root
from app.sandbox.glob import Budget

Remove = Callable[[Sequence[Entry]], None]


@dataclass(frozen=True)
class StepContext:
    """A step's workspace (None: it does not exist), the runner's way of removing, and
    what is left of the request's glob budget (None: unbounded)."""

    workspace: Root | None
    remove: Remove
    budget: Budget | None = None


def remove_in_place(workspace: Root) -> Remove:
    """Remove entries for good, now (one already gone is fine)."""

    def remove(entries: Sequence[Entry]) -> None:
        for entry in entries:
            # Entries passed the size limits when asked for, or a glob walk found them.
            workspace.remove(entry.path, limited=False)

    return remove
