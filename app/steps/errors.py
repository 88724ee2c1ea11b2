"""Errors of the steps layer.

A step fails with a ``StepError`` or with one of the sandbox's errors
(``app.sandbox.errors.SandboxError``), which pass through unchanged. Both carry a stable
snake_case ``code``::

    StepError
    ├── TargetNotFound     strict mode, and an entry or pattern matched nothing
    ├── AtomicUnsupported  an atomic batch cannot move a target aside (another filesystem)
    ├── InvalidConfig      a step run on its own (Kargo's doors) with a config that does not
    │                      fit its kind, or a kind there is no step for
    └── Stopped            the service is shutting down: the work stopped at a safe point
"""

from __future__ import annotations

from collections.abc import Sequence


class StepError(Exception):
    """Base of the steps layer's own errors."""

    code = "step_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TargetNotFound(StepError):
    """Strict mode: these entries or patterns matched nothing; nothing was deleted."""

    code = "not_found"

    def __init__(self, missing: Sequence[str]) -> None:
        listed = ", ".join(repr(m) for m in missing)
        super().__init__(f"strict mode: nothing matches {listed}; nothing was deleted")
        self.missing = list(missing)


class AtomicUnsupported(StepError):
    """The staging area is on another filesystem than a target: no undoable delete."""

    code = "atomic_unsupported"

    def __init__(self, path: str) -> None:
        super().__init__(
            f"cannot move {path!r} aside: the staging area is on another filesystem, so "
            "atomic batches cannot run here (nothing is deleted in place instead)"
        )
        self.path = path


class InvalidConfig(StepError):
    """A step's kind or config is not one stepd can run; nothing was run.

    ``code`` is ``unknown_step``, ``invalid_request`` (the config does not fit the kind's
    model), or the sandbox's own code when every error is a target refused before
    anything runs (``path_outside_workspace``, ``invalid_path``...): ``refused``.
    """

    def __init__(self, code: str, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.refused = refused


class Stopped(StepError):
    """The work stopped before it was done: the service is shutting down.

    ``deleted`` were removed wholly before the stop; ``partly`` (at most one) was being
    removed when an urgent stop cut it short: some of what it held is gone.
    """

    code = "shutting_down"

    def __init__(self, deleted: Sequence[str] = (), partly: Sequence[str] = ()) -> None:
        message = "the service is shutting down: stopped"
        if deleted:
            count = len(deleted)
            message += f" after deleting {count} {'entry' if count == 1 else 'entries'}"
        else:
            message += " before deleting anything"
        if partly:
            message += "; " + ", ".join(repr(p) for p in partly) + " is partly deleted"
        super().__init__(message)
        self.deleted = list(deleted)
        self.partly = list(partly)
