"""The batch runner: steps in order, ``continueOnError``, and all-or-nothing ``atomic``.

Statuses use Kargo's words. A step that raised is ``Failed`` when running it again on the
same workspace would fail the same way (the request or the workspace is wrong: a strict
target missing, a path leading out, permission denied, a read-only filesystem, no atomic
support), and ``Errored`` when the failure is the environment's and a retry may succeed
(busy, no space, out of descriptors, I/O error, a shutdown) or is a bug. Steps after the one that
stopped the batch are ``Skipped``; a step with ``continue_on_error`` is recorded and the
batch goes on, and the batch still succeeds.

Isolation: an atomic batch holds the staging lock exclusively (no other batch runs, and no
one observes its uncommitted moves); other batches share it. Purging happens after the
lock is released, by the purger: in the background, or inline when it is not one.

Removal: when the purger works in the background, a non-atomic batch detaches its
directories and big files into one trash directory (``Detachment``) and unlinks small
files and symlinks in place; otherwise, or where the trash is on another filesystem, it
removes everything in place. An atomic batch stages its targets in its transaction.

Stopping (``stop.py``): once a stop is requested, no further step starts (it is
``Errored`` with ``Stopped``, the rest ``Skipped``) and a plain step stops before its next
entry; an atomic batch then rolls back as for any failure. An urgent stop also cuts a
tree being removed in place, and an inline purge (left to the next start).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.models.internal import BatchRequest, BatchStep
from app.sandbox import Entry, Root
from app.sandbox.errors import Busy, IOFailure, NoSpace, SandboxError, TooManyOpenFiles
from app.sandbox.glob import Budget
from app.sandbox.remove import Pace
from app.steps.context import (
    Incomplete,
    RemovalFailed,
    Remove,
    StepContext,
    one_by_one,
    remove_in_place,
)
from app.steps.errors import StepError, Stopped
from app.steps.purger import Purger
from app.steps.registry import KINDS
from app.steps.staging import Detachment, Transaction, worth_detaching
from app.steps.stop import NEVER, Stop, urgent_pace
from app.steps.workspace import Workspace

log = logging.getLogger(__name__)

TRANSIENT: tuple[type[Exception], ...] = (Busy, NoSpace, TooManyOpenFiles, IOFailure, Stopped)


class StepStatus(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERRORED = "Errored"
    SKIPPED = "Skipped"


@dataclass(frozen=True)
class StepResult:
    """A step's fate: ``output`` (its kind's outcome) when it succeeded, else ``error``,
    with ``output`` then telling what it did before failing (None if nothing was tried)."""

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
    root: Root,
    purger: Purger,
    request: BatchRequest,
    stop: Stop = NEVER,
    budget: Budget | None = None,
) -> BatchResult:
    """Run ``request``'s steps in its workspace; see the module doc for the rules. The
    steps' glob walks share ``budget`` (None: unbounded).

    Raises the staging area's error when a killed process's batch cannot be recovered
    yet: no step runs over a half-done atomic batch."""
    staging = purger.staging
    txn = staging.begin() if request.atomic else None
    detachment = staging.detachment() if txn is None and purger.background else None
    try:
        with ExitStack() as stack:
            # One check of the staging area serves recovery and the lock.
            area = stack.enter_context(staging.readied())
            try:
                stack.enter_context(staging.lock(exclusive=request.atomic, area=area))
            except (SandboxError, StepError) as exc:
                result = _not_run(request, exc)
            else:
                result = _run_locked(root, _Removal(txn, detachment, stop), request, budget)
    finally:
        if txn is not None and txn.created:
            _dispose(purger, stop, txn.id)
        if detachment is not None and detachment.created:
            detachment.close()
            _dispose(purger, stop, detachment.txn_id, detachment.moved, detachment.size)
    if result.failed is not None and isinstance(result.failed.error, Stopped):
        log.warning(
            "shutdown: batch stopped at step %r%s: %s",
            result.failed.alias,
            "; rolled back" if result.rolled_back else "",
            result.failed.error.message,
        )
    return result


def _not_run(request: BatchRequest, exc: Exception) -> BatchResult:
    """The batch whose lock could not be taken (an atomic batch's staging area is not
    usable): its first step fails with ``exc``, the others are skipped, and the workspace
    is as it was (so an atomic batch counts as rolled back)."""
    first, *rest = request.steps
    failed = StepResult(first.alias, first.uses, status_of(exc), error=exc)
    skipped = [StepResult(step.alias, step.uses, StepStatus.SKIPPED) for step in rest]
    return BatchResult([failed, *skipped], failed, rolled_back=request.atomic)


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
            if removal.stop.requested:
                result = StepResult(step.alias, step.uses, StepStatus.ERRORED, error=Stopped())
            else:
                result = _run_step(step, workspace, removal, budget)
            results.append(result)
            stops = isinstance(result.error, Stopped)
            if result.error is not None and (stops or not step.continue_on_error):
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
    return BatchResult(results, failed, rolled_back=_roll_back(txn))


def _roll_back(txn: Transaction) -> bool:
    """Undo ``txn``; whether everything could be put back (or was superseded)."""
    try:
        return txn.rollback()
    except SandboxError as exc:
        log.error("atomic batch %s: rollback failed: %s", txn.id, exc)
        return False


def _run_step(
    step: BatchStep, workspace: Workspace, removal: _Removal, budget: Budget | None
) -> StepResult:
    output = None
    try:
        opened = workspace.get()
        remove = _nothing if opened is None else removal.remover(opened, workspace.name)
        output = KINDS[step.uses].run(StepContext(opened, remove, budget), step.config)
    except Exception as exc:
        error = exc
        if isinstance(exc, Incomplete):
            error, output = exc.cause, exc.output
        if not isinstance(error, SandboxError | StepError):
            log.error("step %r (%s) raised unexpectedly", step.alias, step.uses, exc_info=error)
        return StepResult(step.alias, step.uses, status_of(error), output=output, error=error)
    return StepResult(step.alias, step.uses, StepStatus.SUCCEEDED, output=output)


def _dispose(
    purger: Purger, stop: Stop, txn_id: str, entries: int = 0, size: int | None = 0
) -> None:
    """Have the purger free a trash directory; an inline purge stops when ``stop`` is
    urgent, and what it left is freed at the next start."""
    try:
        purger.dispose(txn_id, entries, size, pace=urgent_pace(stop))
    except Stopped:
        log.warning("shutdown: trash directory %s is left for the next start to free", txn_id)


@dataclass(frozen=True)
class _Removal:
    """How this batch's steps remove: staged in ``txn`` (atomic), detached into the trash
    (``detachment``), or in place (neither); each stopping where ``stop`` says."""

    txn: Transaction | None
    detachment: Detachment | None
    stop: Stop

    def remover(self, opened: Root, name: str | None) -> Remove:
        txn, detachment, stop = self.txn, self.detachment, self.stop
        if txn is not None:

            def stage(entries: Sequence[Entry]) -> None:
                # Renames only: a step's entries are staged together, between two checks.
                if stop.requested:
                    raise Stopped()
                done: list[Entry] = []
                try:
                    txn.stage(opened, name, entries, done)
                except Exception as exc:
                    raise RemovalFailed(exc, [entry.path for entry in done]) from exc

            return stage
        if detachment is None:
            return remove_in_place(opened, stop)

        def detach_or_remove(entry: Entry, pace: Pace) -> None:
            if not worth_detaching(entry) or detachment.detach(opened, [entry]):
                opened.remove(entry.path, limited=False, pace=pace)

        return one_by_one(detach_or_remove, stop)


def _nothing(entries: Sequence[Entry]) -> None:
    """An absent workspace holds nothing to remove."""
    assert not entries
