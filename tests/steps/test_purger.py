"""Detach, then purge: a plain delete's targets go into the trash whole, and the purger
frees them (in the background, or inline), resuming whatever a previous run left."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.sandbox import Entry, Root
from app.steps.purger import Purger
from app.steps.staging import Staging


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
    left = detachment.detach(root, _entries(root, "d", "g", "link"), [])
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
    detachment.detach(root, _entries(root, "g", "d/e/f"), [])
    assert (detachment.moved, detachment.size) == (2, 17)


def test_an_entry_gone_meanwhile_is_not_counted(root: Root, staging: Staging, tree: Path) -> None:
    entries = _entries(root, "g")
    (tree / "g").unlink()
    detachment = staging.detachment()
    assert detachment.detach(root, entries, []) == []
    assert detachment.moved == 0


def test_purger_frees_what_it_is_given(
    root: Root, staging: Staging, purger: Purger, tree: Path
) -> None:
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d", "g"), [])
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
    detachment.detach(root, _entries(root, "d"), [])
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
    detachment.detach(root, _entries(root, "d"), [])
    paced.dispose(detachment.txn_id, detachment.moved, detachment.size)
    paced.start()
    try:
        assert paced.wait_idle(timeout=60)
    finally:
        paced.stop()
    assert _trash(tree) == []
    assert next(ticks) > 1  # it looked at the activity, so it paused between slices


def test_inline_purger_frees_at_once(root: Root, staging: Staging, tree: Path) -> None:
    inline = Purger(staging, background=False)
    detachment = staging.detachment()
    detachment.detach(root, _entries(root, "d"), [])
    inline.dispose(detachment.txn_id)
    assert _trash(tree) == []
    inline.start()
    assert inline.backlog().entries == 0
