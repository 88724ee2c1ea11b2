"""Stopping step work at a safe point: what a shutdown leaves behind and reports.

A stop is requested here at a chosen point of the work (once a given entry is gone), as a
shutdown arriving then would request it: the runner and the removals decide from it alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.models.internal import BatchRequest, BatchStep, DeleteConfig
from app.sandbox import Root
from app.steps.batch import StepStatus, run_batch, status_of
from app.steps.errors import Stopped
from app.steps.purger import Purger
from app.steps.staging import Staging
from app.steps.stop import NEVER, Stop
from tests.support.snapshot import snapshot

FILES = 40


class StopWhen(Stop):
    """A stop that is requested (and urgent, if ``urgent``) once ``condition`` holds."""

    def __init__(self, condition: Callable[[], bool], *, urgent: bool = False) -> None:
        super().__init__()
        self.condition = condition
        self.urgent_too = urgent

    @property
    def requested(self) -> bool:
        return self.condition()

    @property
    def urgent(self) -> bool:
        return self.urgent_too and self.condition()


@pytest.fixture
def tree(root_dir: Path) -> Path:
    """Directories a, b, c of ``FILES`` files each."""
    for name in "abc":
        (root_dir / name).mkdir()
        for i in range(FILES):
            (root_dir / name / f"f{i}").write_text(name)
    return root_dir


@pytest.fixture(params=["inline", "background"])
def purger(request: pytest.FixtureRequest, root: Root) -> Iterator[Purger]:
    purger = Purger(Staging(root), background=request.param == "background")
    purger.start()
    yield purger
    purger.stop()
    purger.staging.close()


def gone(path: Path) -> Callable[[], bool]:
    return lambda: not path.exists()


def delete(*paths: str, alias: str = "step-0", continue_on_error: bool = False) -> BatchStep:
    config = DeleteConfig(paths=paths)
    return BatchStep(alias, "delete", config, continue_on_error=continue_on_error)


def batch(*steps: BatchStep, atomic: bool = False) -> BatchRequest:
    return BatchRequest("v1", None, atomic=atomic, steps=steps)


def whole(path: Path) -> bool:
    return path.is_dir() and len(os.listdir(path)) == FILES


def test_a_stop_is_an_environment_error() -> None:
    assert status_of(Stopped()) is StepStatus.ERRORED


def test_never_cannot_be_requested() -> None:
    with pytest.raises(TypeError):
        NEVER.request()
    assert not NEVER.requested


def test_a_plain_delete_stops_between_entries_and_says_what_it_deleted(
    root: Root, purger: Purger, tree: Path
) -> None:
    result = run_batch(root, purger, batch(delete("a", "b", "c")), StopWhen(gone(tree / "a")))
    assert result.failed is not None
    assert result.failed.status is StepStatus.ERRORED
    error = result.failed.error
    assert isinstance(error, Stopped)
    assert (error.deleted, error.partly) == (["a"], [])
    assert error.message.endswith("stopped after deleting 1 entry")
    assert not (tree / "a").exists()
    assert whole(tree / "b")
    assert whole(tree / "c")


def test_an_urgent_stop_cuts_the_tree_being_removed_in_place(root: Root, tree: Path) -> None:
    purger = Purger(Staging(root), background=False)

    def half_gone() -> bool:
        return len(os.listdir(tree / "a")) <= FILES // 2

    result = run_batch(root, purger, batch(delete("a", "b")), StopWhen(half_gone, urgent=True))
    assert result.failed is not None
    error = result.failed.error
    assert isinstance(error, Stopped)
    assert (error.deleted, error.partly) == ([], ["a"])
    assert "'a' is partly deleted" in error.message
    assert 0 < len(os.listdir(tree / "a")) < FILES
    assert whole(tree / "b")


def test_no_step_starts_once_a_stop_is_requested(root: Root, purger: Purger, tree: Path) -> None:
    steps = (
        delete("a", alias="first"),
        delete("b", alias="second", continue_on_error=True),
        delete("c", alias="third"),
    )
    result = run_batch(root, purger, batch(*steps), StopWhen(gone(tree / "a")))
    statuses = [(step.alias, step.status) for step in result.steps]
    assert statuses == [
        ("first", StepStatus.SUCCEEDED),
        ("second", StepStatus.ERRORED),
        ("third", StepStatus.SKIPPED),
    ]
    assert result.failed is result.steps[1]
    assert isinstance(result.failed.error, Stopped)
    assert whole(tree / "b")
    assert whole(tree / "c")


def test_a_stopped_atomic_batch_rolls_back(
    root: Root, purger: Purger, tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    purger.staging.prepare()  # made first: making it changes the root's times
    before = snapshot(tree, exclude=(tree / ".stepd",), mtimes=True)
    steps = (delete("a", alias="first"), delete("b", alias="second"), delete("c", alias="third"))
    # Staged, "a" is gone from the workspace: the stop arrives before the second step.
    with caplog.at_level(logging.WARNING):
        result = run_batch(root, purger, batch(*steps, atomic=True), StopWhen(gone(tree / "a")))
    assert result.rolled_back
    assert result.failed is not None
    assert result.failed.alias == "second"
    assert isinstance(result.failed.error, Stopped)
    assert snapshot(tree, exclude=(tree / ".stepd",), mtimes=True) == before
    assert "batch stopped at step 'second'; rolled back" in caplog.text


def test_an_urgent_stop_leaves_an_inline_purge_for_the_next_start(
    root: Root, tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    staging = Staging(root)
    purger = Purger(staging, background=False)
    # Urgent once every target is staged: the batch has committed, its purge is cut.
    stop = StopWhen(lambda: not any((tree / name).exists() for name in "abc"), urgent=True)
    with caplog.at_level(logging.WARNING):
        result = run_batch(root, purger, batch(delete("a", "b", "c"), atomic=True), stop)
    assert result.failed is None
    assert [step.status for step in result.steps] == [StepStatus.SUCCEEDED]
    [left] = staging.pending()
    assert f"trash directory {left} is left for the next start" in caplog.text
    assert staging.recover().purged == 1
    assert staging.pending() == []
