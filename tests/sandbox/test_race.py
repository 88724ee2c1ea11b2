"""Entries swapped while deletes run: a directory for a symlink leading out, and an entry
flipping between a directory and a symlink (``RENAME_EXCHANGE``: never absent).

Nothing outside the workspace changes, a symlink is removed as a link, and every delete
answers cleanly: deleted, absent, or ``Busy`` (409), never another error (no 5xx).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.models.internal import BatchRequest, BatchStep, DeleteConfig
from app.sandbox import Root
from app.sandbox.errors import Busy, SandboxError
from app.steps.batch import StepStatus, run_batch
from app.steps.purger import Purger
from app.steps.staging import Staging
from tests.support.rename import rename_exchange
from tests.support.snapshot import snapshot

# How long the swapping goes on: long enough for many thousand interleavings, not a limit
# anything is measured against.
RACE_SECONDS = 2.0
# The same for each way a batch removes (a step does more than one delete, so less).
STEP_RACE_SECONDS = 1.0


def _refill(dir_fd: int) -> None:
    """Put ``precious.txt`` and ``sub/f`` back into the real directory, wherever it is."""
    os.close(os.open("precious.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dir_fd))
    with contextlib.suppress(FileExistsError):
        os.mkdir("sub", dir_fd=dir_fd)
    sub = os.open("sub", os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    try:
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=sub))
    finally:
        os.close(sub)


@pytest.mark.parametrize("link_target", ["../outside", "absolute"])
def test_a_directory_swapped_for_an_outside_symlink_never_leaks(
    root: Root, root_dir: Path, link_target: str
) -> None:
    outside = root_dir.parent / "outside"
    (outside / "sub").mkdir()
    (outside / "sub" / "f").write_text("keep me")
    before = snapshot(outside)

    swapped, parked_dir, parked_link = root_dir / "d", root_dir / "d.dir", root_dir / "d.link"
    swapped.mkdir()
    parked_link.symlink_to(outside if link_target == "absolute" else link_target)
    real_fd = os.open(swapped, os.O_RDONLY | os.O_DIRECTORY)
    stop = threading.Event()
    failures: list[BaseException] = []

    def swap() -> None:
        try:
            while not stop.is_set():
                os.rename(swapped, parked_dir)
                os.rename(parked_link, swapped)
                os.rename(swapped, parked_link)
                os.rename(parked_dir, swapped)
        except BaseException as exc:
            failures.append(exc)

    swapper = threading.Thread(target=swap)
    swapper.start()
    removed = 0
    try:
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline and not failures:
            _refill(real_fd)
            for path in ("d/precious.txt", "d/sub", "d/sub/f", "./d/sub/"):
                with contextlib.suppress(SandboxError):
                    removed += root.remove(path)
            with contextlib.suppress(SandboxError):
                for match in root.glob("d/*"):
                    with contextlib.suppress(SandboxError):
                        removed += root.remove(match)
    finally:
        stop.set()
        swapper.join()
        os.close(real_fd)

    assert failures == []
    assert removed > 0, "the deletes never reached the real directory"
    assert snapshot(outside) == before


@contextlib.contextmanager
def flipping(root_dir: Path) -> Iterator[Callable[[], None]]:
    """``w/a`` flipping between a directory (with a file and a subdirectory) and a symlink
    to ``w/keep`` (which must never lose its content) for the block, by exchanging it
    with ``w/b``; whichever a delete removed is made again. Yields a check to call after
    the block."""
    workspace = root_dir / "w"
    (workspace / "keep").mkdir(parents=True)
    (workspace / "keep" / "precious.txt").write_text("keep me")
    (workspace / "b").symlink_to("keep")
    _make_dir(workspace / "a")
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)
    stop = threading.Event()
    failures: list[BaseException] = []
    flips = Counter[str]()

    def flip() -> None:
        try:
            while not stop.is_set():
                try:
                    rename_exchange(fd, "a", "b")
                    flips["exchanged"] += 1
                except FileNotFoundError:
                    # A delete got one of them: make it again (a delete may race that too).
                    with contextlib.suppress(FileExistsError, FileNotFoundError):
                        _make_dir(workspace / "a")
                    with contextlib.suppress(FileExistsError):
                        (workspace / "b").symlink_to("keep")
                    flips["remade"] += 1
        except BaseException as exc:
            failures.append(exc)

    def check() -> None:
        assert failures == []
        assert flips["exchanged"] > 100, flips
        assert (workspace / "keep" / "precious.txt").read_text() == "keep me"

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        yield check
    finally:
        stop.set()
        flipper.join()
        os.close(fd)


def _make_dir(path: Path) -> None:
    # Enough entries that removing it takes long enough to be swapped meanwhile.
    path.mkdir()
    (path / "sub").mkdir()
    (path / "sub" / "f").write_text("f")
    for n in range(16):
        (path / ("file" if n == 0 else f"file{n}")).write_text("file")


def test_an_entry_flipping_between_directory_and_symlink_deletes_cleanly(
    root: Root, root_dir: Path
) -> None:
    outside = snapshot(root_dir.parent / "outside")
    outcomes = Counter[str]()
    with flipping(root_dir) as check:
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline:
            try:
                outcomes[str(root.remove("w/a"))] += 1
            except Busy:
                outcomes["busy"] += 1
    check()
    assert outcomes["True"] > 0, outcomes
    assert snapshot(root_dir.parent / "outside") == outside


@pytest.mark.parametrize("background", [True, False], ids=["detach", "inline"])
@pytest.mark.parametrize("atomic", [False, True], ids=["plain", "atomic"])
def test_delete_steps_on_a_flipping_entry_answer_cleanly(
    root: Root, root_dir: Path, background: bool, atomic: bool
) -> None:
    purger = Purger(Staging(root), background=background)
    purger.start()
    step = BatchStep("flip", "delete", DeleteConfig(paths=("a", "a/sub", "a/file")))
    request = BatchRequest("v1", "w", atomic=atomic, steps=(step,))
    outcomes = Counter[str]()
    try:
        with flipping(root_dir) as check:
            deadline = time.monotonic() + STEP_RACE_SECONDS
            while time.monotonic() < deadline:
                result = run_batch(root, purger, request)
                if result.failed is None:
                    outcomes["succeeded"] += 1
                    continue
                error = result.failed.error
                assert isinstance(error, Busy), repr(error)
                assert result.failed.status is StepStatus.ERRORED
                outcomes[error.code] += 1
        check()
    finally:
        purger.stop()
    assert outcomes["succeeded"] > 0, outcomes
