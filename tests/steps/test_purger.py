"""Detach, then purge: a plain delete's targets go into the trash whole, and the purger
frees them (in the background, or inline), resuming whatever a previous run left."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.sandbox import Entry, Root
from app.steps.purger import Freed, Purger
from app.steps.staging import Staging
from tests.support.immutable import immutable, set_immutable
from tests.support.mounts import bind_mount, skip_if_not_permitted


@pytest.fixture
def staging(root: Root) -> Staging:
    return Staging(root)


@pytest.fixture
def purger(staging: Staging) -> Iterator[Purger]:
    """A background purger, not started: tests start it when they want it to run."""
    purger = Purger(staging)
    yield purger
    purger.stop()


@pytest.fixture
def tree(root_dir: Path) -> Path:
    (root_dir / "d" / "e").mkdir(parents=True)
    (root_dir / "d" / "e" / "f").write_text("f" * 10)
    (root_dir / "g").write_text("g" * 7)
    (root_dir / "link").symlink_to("d")
    return root_dir


def _trash(root_dir: Path) -> list[str]:
    return sorted(os.listdir(root_dir / ".stepd" / "trash"))


def _entries(root: Root, *paths: str) -> list[Entry]:
    entries = [root.lookup(path) for path in paths]
    return [entry for entry in entries if entry is not None]


def test_detach_moves_targets_whole_into_the_trash(
    root: Root, staging: Staging, tree: Path
) -> None:
    detachment = staging.detachment()
    left = detachment.detach(root, _entries(root, "d", "g", "link"))
    assert left == []
    assert sorted(os.listdir(tree)) == [".stepd"]
    held = tree / ".stepd" / "trash" / detachment.txn_id
    assert (held / "0" / "e" / "f").read_text() == "f" * 10
    assert (held / "1").read_text() == "g" * 7
    assert os.readlink(held / "2") == "d"  # a symlink is moved as a link
    assert (detachment.created, detachment.moved, detachment.size) == (True, 3, None)


def test_detached_sizes_are_known_without_directories(
    root: Root, staging: Staging, tree: Path
) -> None:
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "g", "d/e/f"))
    assert (detachment.moved, detachment.size) == (2, 17)


def test_an_entry_gone_meanwhile_is_not_counted(root: Root, staging: Staging, tree: Path) -> None:
    entries = _entries(root, "g")
    (tree / "g").unlink()
    detachment = staging.detachment()
    assert detachment.detach(root, entries) == []
    assert detachment.moved == 0


def test_purger_frees_what_it_is_given(
    root: Root, staging: Staging, purger: Purger, tree: Path
) -> None:
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d", "g"))
    purger.dispose(detachment.txn_id, detachment.moved, detachment.size)
    backlog = purger.backlog()
    assert (backlog.entries, backlog.bytes) == (2, None)
    purger.start()
    assert purger.wait_idle(timeout=60)
    assert _trash(tree) == []
    assert (purger.backlog().entries, purger.backlog().bytes) == (0, 0)


def test_purger_resumes_what_a_previous_run_left(
    root: Root, staging: Staging, purger: Purger, tree: Path
) -> None:
    for name in ("a", "b"):
        leftover = tree / ".stepd" / "trash" / name
        (leftover / "0" / "deep").mkdir(parents=True)
        (leftover / "0" / "deep" / "file").write_text("x")
    purger.start()
    staging.ready()  # recovery hands the leftovers over
    assert purger.wait_idle(timeout=60)
    assert _trash(tree) == []
    assert (tree / "d" / "e" / "f").exists()  # the workspace is left alone


def test_purger_never_follows_symlinks(
    root: Root, staging: Staging, purger: Purger, tree: Path, root_dir: Path
) -> None:
    outside = root_dir.parent / "outside"
    (tree / "d" / "out").symlink_to(outside)
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d"))
    purger.dispose(detachment.txn_id, detachment.moved, detachment.size)
    purger.start()
    assert purger.wait_idle(timeout=60)
    assert _trash(tree) == []
    assert (outside / "precious.txt").read_text() == "keep me"


def test_purger_yields_to_requests_and_still_finishes(
    root: Root, staging: Staging, tree: Path
) -> None:
    for n in range(300):
        (tree / "d" / f"file{n}").write_text("x")
    ticks = iter(range(1_000_000))
    paced = Purger(staging, slice_seconds=1e-6, pause_seconds=1e-3, activity=lambda: next(ticks))
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d"))
    paced.dispose(detachment.txn_id, detachment.moved, detachment.size)
    paced.start()
    try:
        assert paced.wait_idle(timeout=60)
    finally:
        paced.stop()
    assert _trash(tree) == []
    assert next(ticks) > 1  # it looked at the activity, so it paused between slices


def test_progress_counts_are_exact(
    root: Root, staging: Staging, purger: Purger, tree: Path
) -> None:
    files = staging.detachment()
    files.detach(root, _entries(root, "g", "d/e/f"))
    purger.dispose(files.txn_id, files.moved, files.size)
    backlog = purger.backlog()
    assert (backlog.entries, backlog.files, backlog.bytes) == (2, 2, 17)
    trees = staging.detachment()
    trees.detach(root, _entries(root, "d", "link"))
    purger.dispose(trees.txn_id, trees.moved, trees.size)
    backlog = purger.backlog()
    assert (backlog.entries, backlog.files, backlog.bytes) == (4, None, None)
    assert backlog.freed == Freed()
    purger.start()
    assert purger.wait_idle(timeout=60)
    backlog = purger.backlog()
    assert (backlog.entries, backlog.files, backlog.bytes) == (0, 0, 0)
    # g, f; then d, e, link. Bytes are those of the entries detached as files.
    assert backlog.freed == Freed(entries=4, files=5, bytes=17)
    assert backlog.files_per_second > 0


def _files(tree: Path, count: int) -> None:
    for n in range(count):
        (tree / "d" / f"file{n}").write_text("x")


def test_a_floor_keeps_the_purge_going_under_constant_traffic(
    root: Root, staging: Staging, tree: Path
) -> None:
    _files(tree, 1000)
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d"))
    busy = itertools.count()  # a request begins between any two looks: constant traffic

    def purger(floor: float) -> Purger:
        paced = Purger(
            staging, slice_seconds=1e-6, pause_seconds=600, floor=floor, activity=lambda: next(busy)
        )
        paced.dispose(detachment.txn_id, detachment.moved, detachment.size)
        paced.start()
        return paced

    yielding = purger(floor=0)  # yields to every request: one slice, then a long pause
    try:
        assert _wait(lambda: yielding.backlog().freed.files > 0)
        assert not yielding.wait_idle(timeout=0.3)
        assert yielding.backlog().freed.files < 1000
    finally:
        assert yielding.stop()
    floored = purger(floor=0.5)
    try:
        assert floored.wait_idle(timeout=60)  # the pauses shrank to keep half the time
    finally:
        floored.stop()
    assert _trash(tree) == []
    freed = yielding.backlog().freed.files + floored.backlog().freed.files
    assert freed == 1000 + 3  # and d, e, e/f


def test_inline_purger_frees_at_once(root: Root, staging: Staging, tree: Path) -> None:
    inline = Purger(staging, background=False)
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d"))
    inline.dispose(detachment.txn_id)
    assert _trash(tree) == []
    assert inline.backlog().entries == 0


def _wait(predicate: Callable[[], bool], timeout: float = 60) -> bool:
    """Whether ``predicate`` comes true within ``timeout`` seconds (a bound that only keeps
    a broken purger from hanging the test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("background", [True, False], ids=["background", "inline"])
def test_what_cannot_be_freed_is_counted_and_retried_without_a_restart(
    root: Root, staging: Staging, tree: Path, background: bool
) -> None:
    sealed = tree / "d" / "sealed"
    sealed.mkdir()
    (sealed / "inner").write_text("cannot go")
    with immutable(sealed):
        retrying = Purger(staging, background=background, retry_first=0.05, retry_max=0.2)
        retrying.start()
        try:
            detachment = staging.detachment()
            detachment.detach(root, _entries(root, "d"))
            retrying.dispose(detachment.txn_id, detachment.moved, detachment.size)
            assert _wait(lambda: retrying.backlog().stuck == 1)
            backlog = retrying.backlog()
            assert (backlog.entries, backlog.stuck) == (1, 1)
            assert backlog.oldest_seconds > 0
            [held] = _trash(tree)
            assert _wait(lambda: retrying.backlog().oldest_seconds > 0.3)  # retried meanwhile
            set_immutable(tree / ".stepd" / "trash" / held / "0" / "sealed", False)
            assert _wait(lambda: retrying.backlog().entries == 0)
        finally:
            retrying.stop()
    assert _trash(tree) == []
    backlog = retrying.backlog()
    assert (backlog.entries, backlog.files, backlog.stuck, backlog.oldest_seconds) == (0, 0, 0, 0)
    assert backlog.freed == Freed(entries=1, files=5, bytes=0)  # d, e, f, sealed, inner


def test_a_mount_point_in_the_trash_is_retried_until_it_goes(
    root: Root, staging: Staging, tree: Path, root_dir: Path
) -> None:
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d"))
    mount_point = tree / ".stepd" / "trash" / detachment.txn_id / "0" / "e"
    outside = root_dir.parent / "outside"
    retrying = Purger(staging, retry_first=0.05, retry_max=0.2)
    with skip_if_not_permitted(), bind_mount(outside, mount_point):
        retrying.start()
        retrying.dispose(detachment.txn_id, detachment.moved, detachment.size)
        try:
            assert _wait(lambda: retrying.backlog().stuck == 1)
            assert (outside / "precious.txt").read_text() == "keep me"
        finally:
            if retrying.backlog().stuck != 1:
                retrying.stop()
    try:
        assert _wait(lambda: retrying.backlog().entries == 0)
    finally:
        retrying.stop()
    assert _trash(tree) == []
    assert (outside / "precious.txt").read_text() == "keep me"
