"""The batch runner: steps in order, ``continueOnError``, and all-or-nothing ``atomic``.

Statuses use Kargo's words. A step that raised is ``Failed`` when running it again on the
same workspace would fail the same way (the request or the workspace is wrong: a strict
target missing, a path leading out, permission denied, a read-only filesystem, no atomic
support), and ``Errored`` when the failure is the environment's and a retry may succeed
(busy, no space, out of descriptors, I/O error) or is a bug. Steps after the one that
stopped the batch are ``Skipped``; a step with ``continue_on_error`` is recorded and the
batch goes on, and the batch still succeeds.

Isolation: an atomic batch holds the staging lock exclusively (no other batch runs, and no
one observes its uncommitted moves); other batches share it. Purging happens after the
lock is released, by the purger: in the background, or inline when it is not one.

Removal: when the purger works in the background, a non-atomic batch detaches its
directories and big files into one trash directory (``Detachment``) and unlinks small
files and symlinks in place; otherwise, or where the trash is on another filesystem, it
removes everything in place. An atomic batch stages its targets in its transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.models.internal import BatchRequest, BatchStep
from app.sandbox import Entry, Root
from app.sandbox.errors import Busy, IOFailure, NoSpace, SandboxError, TooManyOpenFiles
from app.sandbox.glob import Budget
from app.steps.context import Remove, StepContext, remove_in_place
from app.steps.errors import StepError
from app.steps.purger import Purger
from app.steps.registry import KINDS
from app.steps.staging import Detachment, Transaction, worth_detaching
from app.steps.workspace import Workspace

log = logging.getLogger(__name__)

TRANSIENT: tuple[type[Exception], ...] = (Busy, NoSpace, TooManyOpenFiles, IOFailure)


class StepStatus(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERRORED = "Errored"
    SKIPPED = "Skipped"


@dataclass(frozen=True)
class StepResult:
    """A step's fate: ``output`` (its kind's outcome) when it succeeded, else ``error``."""

    alias: str
    uses: str
    status: StepStatus
    output: Any = None
    error: Exception | None = None


@dataclass(frozen=True)
class BatchResult:
    """Every step's result; ``failed`` is the step that stopped the batch, if one did."""

    steps: list[StepResult]
    failed: StepResult | None
    rolled_back: bool

    @property
    def status(self) -> StepStatus:
        return StepStatus.SUCCEEDED if self.failed is None else self.failed.status


def status_of(exc: Exception) -> StepStatus:
    """``Failed`` or ``Errored`` for an exception a step raised (see the module doc)."""
    if isinstance(exc, SandboxError | StepError) and not isinstance(exc, TRANSIENT):
        return StepStatus.FAILED
    return StepStatus.ERRORED


def run_batch(
    root: Root, purger: Purger, request: BatchRequest, budget: Budget | None = None
) -> BatchResult:
    """Run ``request``'s steps in its workspace; see the module doc for the rules. The
    steps' glob walks share ``budget`` (None: unbounded).

    Raises the staging area's error when a killed process's batch cannot be recovered
    yet: no step runs over a half-done atomic batch."""
    staging = purger.staging
    staging.ready()
    txn = staging.begin() if request.atomic else None
    detachment = staging.detachment() if txn is None and purger.background else None
    try:
        with staging.lock(exclusive=request.atomic):
            return _run_locked(root, _Removal(txn, detachment), request, budget)
    finally:
        if txn is not None and txn.created:
            purger.dispose(txn.id)
        if detachment is not None and detachment.created:
            detachment.close()
            purger.dispose(detachment.txn_id, detachment.moved, detachment.size)


def _run_locked(
    root: Root, removal: _Removal, request: BatchRequest, budget: Budget | None
) -> BatchResult:
    results: list[StepResult] = []
    failed: StepResult | None = None
    with Workspace(root, request.workspace) as workspace:
        for step in request.steps:
            if failed is not None:
                results.append(StepResult(step.alias, step.uses, StepStatus.SKIPPED))
                continue
            result = _run_step(step, workspace, removal, budget)
            results.append(result)
            if result.error is not None and not step.continue_on_error:
                failed = result
    txn = removal.txn
    if txn is None:
        return BatchResult(results, failed, rolled_back=False)
    if failed is None:
        try:
            txn.commit()
            return BatchResult(results, None, rolled_back=False)
        except Exception as exc:
            # The moves may not be final: undo them, and blame the last step that ran.
            last = results[-1]
            failed = StepResult(last.alias, last.uses, status_of(exc), error=exc)
            results[-1] = failed
    txn.rollback()
    return BatchResult(results, failed, rolled_back=True)


def _run_step(
    step: BatchStep, workspace: Workspace, removal: _Removal, budget: Budget | None
) -> StepResult:
    try:
        opened = workspace.get()
        remove = _nothing if opened is None else removal.remover(opened, workspace.name)
        output = KINDS[step.uses].run(StepContext(opened, remove, budget), step.config)
    except Exception as exc:
        if not isinstance(exc, SandboxError | StepError):
            log.exception("step %r (%s) raised unexpectedly", step.alias, step.uses)
        return StepResult(step.alias, step.uses, status_of(exc), error=exc)
    return StepResult(step.alias, step.uses, StepStatus.SUCCEEDED, output=output)


@dataclass(frozen=True)
class _Removal:
    """How this batch's steps remove: staged in ``txn`` (atomic), detached into the trash
    (``detachment``), or in place (neither)."""

    txn: Transaction | None
    detachment: Detachment | None

    def remover(self, opened: Root, name: str | None) -> Remove:
        txn, detachment = self.txn, self.detachment
        if txn is not None:

            def stage(entries: Sequence[Entry]) -> None:
                txn.stage(opened, name, entries)

            return stage
        in_place = remove_in_place(opened)
        if detachment is None:
            return in_place

        def detach(entries: Sequence[Entry]) -> None:
            small = [entry for entry in entries if not worth_detaching(entry)]
            big = [entry for entry in entries if worth_detaching(entry)]
            in_place(small + detachment.detach(opened, big))

        return detach


def _nothing(entries: Sequence[Entry]) -> None:
    """An absent workspace holds nothing to remove."""
    assert not entries
