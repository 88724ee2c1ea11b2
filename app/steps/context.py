"""What a step kind is given to run: its workspace, and how to remove entries from it.

Kinds decide *what* to remove; the runner decides *how*: in place, or moved aside into a
transaction that can still be rolled back (see ``staging.py``). A kind never calls
``Root.remove`` itself, so every kind is undoable in an atomic batch for free, and every
removal stops at the safe points of ``stop.py``.

Whatever stops a removal partway, the answer must not hide what was already removed: a
``Remove`` that fails raises ``RemovalFailed`` with the paths it removed before (or
``Stopped``, which lists them too), and a kind turns that into ``Incomplete``, carrying
its output up to there, which the runner reports beside the error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.sandbox import Entry, Root
from app.sandbox.glob import Budget
from app.sandbox.remove import Pace
from app.steps.errors import Stopped
from app.steps.stop import NEVER, Stop, urgent_pace

Remove = Callable[[Sequence[Entry]], None]
# Removes one entry, calling the pace after each file of a tree (it may raise ``Stopped``).
RemoveOne = Callable[[Entry, Pace], None]


@dataclass(frozen=True)
class StepContext:
    """A step's workspace (None: it does not exist), the runner's way of removing, and
    what is left of the request's glob budget (None: unbounded)."""

    workspace: Root | None
    remove: Remove
    budget: Budget | None = None


class RemovalFailed(Exception):
    """A ``Remove`` failed with ``cause`` after removing ``removed`` (paths, in order)."""

    def __init__(self, cause: Exception, removed: Sequence[str]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.removed = list(removed)


class Incomplete(Exception):
    """A step's failure after part of its work was done: ``cause`` stopped it, and
    ``output`` is what it had done (its kind's result up to there). The runner reports
    both, so that an answer never hides a deletion that happened."""

    def __init__(self, cause: Exception, output: Any) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.output = output


def one_by_one(remove_one: RemoveOne, stop: Stop = NEVER) -> Remove:
    """Remove entries in order with ``remove_one``, stopping where ``stop`` says: before
    an entry once requested, inside one once urgent. ``Stopped`` lists what is gone, and
    so does ``RemovalFailed`` for any other failure."""
    pace = urgent_pace(stop)

    def remove(entries: Sequence[Entry]) -> None:
        done: list[str] = []
        for entry in entries:
            if stop.requested:
                raise Stopped(done)
            try:
                remove_one(entry, pace)
            except Stopped:
                raise Stopped(done, [entry.path]) from None
            except Exception as exc:
                raise RemovalFailed(exc, done) from exc
            done.append(entry.path)

    return remove


def remove_in_place(workspace: Root, stop: Stop = NEVER) -> Remove:
    """Remove entries for good, now (one already gone is fine)."""

    def remove_one(entry: Entry, pace: Pace) -> None:
        # Entries passed the size limits when asked for, or a glob walk found them.
        workspace.remove(entry.path, limited=False, pace=pace)

    return one_by_one(remove_one, stop)
