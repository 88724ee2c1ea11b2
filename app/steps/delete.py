"""The ``delete`` step: remove files, directories and symlinks, idempotently.

A missing target is success (as ``rm -f``); ``strict`` makes it a failure. Every entry is
resolved before anything is deleted, so a strict failure or a refused entry deletes
nothing; an entry that vanishes during deletion (a parent listed earlier, a concurrent
request) is not an error. A step's glob patterns are matched in one walk, within the
request's ``Budget``.

Deleted paths are reported ``printable`` (a name that is not valid UTF-8 escaped).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from app.models.internal import DeleteConfig
from app.sandbox import Entry, Root
from app.sandbox.glob import Budget, compile_patterns
from app.sandbox.names import printable
from app.sandbox.paths import join, split
from app.steps.context import Incomplete, RemovalFailed, StepContext
from app.steps.errors import TargetNotFound

log = logging.getLogger(__name__)


@dataclass
class DeletePlan:
    """What a delete step will remove, decided before anything is removed."""

    targets: list[Entry] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def outcome(self, removed: Collection[str] | None = None) -> DeleteOutcome:
        """What applying the plan deleted, as reported: every target, or only those whose
        paths are in ``removed`` (when removal stopped partway)."""
        deleted = [
            printable(entry.path)
            for entry in self.targets
            if removed is None or entry.path in removed
        ]
        return DeleteOutcome(deleted, self.absent)


@dataclass(frozen=True)
class DeleteOutcome:
    deleted: list[str]
    absent: list[str]


def plan_delete(
    workspace: Root | None, config: DeleteConfig, budget: Budget | None = None
) -> DeletePlan:
    """Resolve every entry of ``config`` in ``workspace`` (None: it does not exist), glob
    patterns within ``budget`` (None: unbounded).

    Raises ``TargetNotFound`` in strict mode when something matched nothing, and the
    sandbox's errors for entries that must not be touched.
    """
    plan = _PlanBuilder(workspace, config, budget).build()
    if config.strict and plan.absent:
        raise TargetNotFound(plan.absent)
    for missing in plan.absent:
        log.debug("delete target absent, nothing to do: %s", missing)
    return plan


def run_delete(context: StepContext, config: DeleteConfig) -> DeleteOutcome:
    """Plan, then apply, a delete step; a target already gone counts as deleted.

    A failure while removing raises ``Incomplete`` with what was deleted before it (a
    shutdown's ``Stopped`` lists that itself)."""
    plan = plan_delete(context.workspace, config, context.budget)
    if plan.targets:
        try:
            context.remove(plan.targets)
        except RemovalFailed as failed:
            raise Incomplete(failed.cause, plan.outcome(failed.removed)) from failed.cause
    return plan.outcome()


class _PlanBuilder:
    """Builds a ``DeletePlan``, keeping one target per real entry however it is spelt."""

    def __init__(self, workspace: Root | None, config: DeleteConfig, budget: Budget | None) -> None:
        self.workspace = workspace
        self.config = config
        self.budget = budget
        self.plan = DeletePlan()
        self.seen: set[tuple[int, int, str]] = set()

    def build(self) -> DeletePlan:
        if not self.config.globs:
            for path in self.config.paths:
                self._add_path(path)
        elif self.workspace is None:
            compile_patterns(self.config.paths)
            self.plan.absent.extend(self.config.paths)
        else:
            found = self.workspace.glob_all(self.config.paths, self.budget)
            for pattern, matches in zip(self.config.paths, found, strict=True):
                self._add_pattern(pattern, matches)
        return self.plan

    def _add_path(self, path: str) -> None:
        normalised = join(split(path))
        if not self._add_target(normalised):
            self.plan.absent.append(normalised)

    def _add_pattern(self, pattern: str, matches: list[str]) -> None:
        found = False
        for match in matches:
            found = self._add_target(match) or found
        if not found:
            self.plan.absent.append(pattern)

    def _add_target(self, path: str) -> bool:
        if self.workspace is None:
            return False
        # ``path`` passed the limits in ``_add_path``, or is a glob match: a tree may be
        # deeper than any entry a caller may write, and ``**`` still finds its leaves.
        entry = self.workspace.lookup(path, limited=False)
        if entry is None:
            return False
        if entry.identity not in self.seen:
            self.seen.add(entry.identity)
            self.plan.targets.append(entry)
        return True
