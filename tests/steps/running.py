"""Running a delete step the way the batch runner does, for tests of the domain alone."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from app.models.internal import DeleteConfig
from app.sandbox import Entry, Root
from app.sandbox.glob import Budget
from app.steps import delete
from app.steps.context import StepContext, remove_in_place
from app.steps.delete import DeleteOutcome, DeletePlan
from app.steps.workspace import Workspace


def _nothing_to_remove(entries: Sequence[Entry]) -> None:
    assert not entries, "an absent workspace has nothing to remove"


def context(workspace: Root | None, budget: Budget | None = None) -> StepContext:
    """What the runner gives a non-atomic step: removal in place (and ``budget``)."""
    remove = _nothing_to_remove if workspace is None else remove_in_place(workspace)
    return StepContext(workspace, remove, budget)


def run_delete(
    workspace: Root | None, config: DeleteConfig, budget: Budget | None = None
) -> DeleteOutcome:
    """Plan and apply a delete step in place, its globs within ``budget``."""
    return delete.run_delete(context(workspace, budget), config)


def apply_delete(workspace: Root | None, plan: DeletePlan) -> DeleteOutcome:
    """Apply a plan made earlier, in place."""
    context(workspace).remove(plan.targets)
    return plan.outcome()


@contextmanager
def open_workspace(root: Root, name: str | None) -> Iterator[Root | None]:
    """The workspace ``name`` of ``root`` (None: the root), None when it does not exist."""
    with Workspace(root, name) as workspace:
        yield workspace.get()
