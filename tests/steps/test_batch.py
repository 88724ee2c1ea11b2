"""The batch runner: which failures are ``Failed`` and which ``Errored``."""

from __future__ import annotations

import errno

import pytest

from app.sandbox.errors import (
    Busy,
    InvalidPath,
    IOFailure,
    NoSpace,
    OutsideRoot,
    PermissionDenied,
    ReadOnlyFilesystem,
)
from app.steps.batch import StepStatus, status_of
from app.steps.errors import AtomicUnsupported, TargetNotFound


@pytest.mark.parametrize(
    "exc",
    [
        TargetNotFound(["x"]),
        InvalidPath("x"),
        OutsideRoot("x"),
        PermissionDenied("x", err=errno.EACCES),
        ReadOnlyFilesystem("x", err=errno.EROFS),
        AtomicUnsupported("x"),
    ],
)
def test_a_wrong_request_or_workspace_is_failed(exc: Exception) -> None:
    assert status_of(exc) is StepStatus.FAILED


@pytest.mark.parametrize("exc", [Busy("x"), NoSpace("x"), IOFailure("x"), RuntimeError("a bug")])
def test_the_environment_failing_is_errored(exc: Exception) -> None:
    assert status_of(exc) is StepStatus.ERRORED
