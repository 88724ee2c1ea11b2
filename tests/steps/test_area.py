"""stepd's own area (``.stepd``): reached through the sandbox, trusted only while it is
stepd's, and checked again at every use. Every test keeps canaries outside the root
(hash, inode, mtime) and checks that none changed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.models.internal import BatchRequest, BatchStep, DeleteConfig
from app.sandbox import Entry, Root
from app.sandbox.errors import Busy
from app.steps.area import StateArea, Unusable, take_ownership
from app.steps.batch import StepStatus, run_batch
from app.steps.errors import AtomicUnsupported
from app.steps.purger import Purger
from app.steps.staging import Staging
from tests.support.canaries import Canaries
from tests.support.mounts import bind_mount, skip_if_not_permitted

OTHER_USER = 4242


@pytest.fixture
def canaries(root_dir: Path) -> Iterator[Canaries]:
    planted = Canaries.plant(root_dir.parent / "canaries")
    yield planted
    assert not planted.changes()


@pytest.fixture
def staging(root: Root) -> Iterator[Staging]:
    opened = Staging(root)
    yield opened
    opened.close()


@pytest.fixture
def tree(root_dir: Path) -> Path:
    for name in ("d1", "d2", "d3"):
        (root_dir / name / "sub").mkdir(parents=True)
        (root_dir / name / "sub" / "f").write_text(name)
    return root_dir


def _entry(root: Root, path: str) -> Entry:
    entry = root.lookup(path)
    assert entry is not None
    return entry


def _detach(staging: Staging, root: Root, path: str) -> tuple[str, list[Entry]]:
    """Detach ``path``; the trash directory's id and what is left to remove in place."""
    detachment = staging.detachment()
    left = detachment.detach(root, [_entry(root, path)])
    detachment.close()
    return detachment.txn_id, left


# What can stand at each level of the area instead of a directory of stepd's own.
def _symlink(where: Path, outside: Path) -> None:
    where.symlink_to(outside)


def _foreign_owner(where: Path, outside: Path) -> None:
    where.mkdir(mode=0o700)
    os.chown(where, OTHER_USER, OTHER_USER)


def _writable_by_all(where: Path, outside: Path) -> None:
    where.mkdir()
    where.chmod(0o777)


def _a_file(where: Path, outside: Path) -> None:
    where.write_text("not a directory")


SHAPES = [_symlink, _foreign_owner, _writable_by_all, _a_file]
LEVELS = [".stepd", ".stepd/trash"]


def _plant(root_dir: Path, level: str, shape: object, outside: Path) -> None:
    if level != ".stepd":
        (root_dir / ".stepd").mkdir(mode=0o700)
    assert callable(shape)
    shape(root_dir / level, outside)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.__name__.strip("_"))
@pytest.mark.parametrize("level", LEVELS)
def test_an_untrusted_area_is_refused_and_deletes_happen_in_place(
    root: Root, staging: Staging, tree: Path, canaries: Canaries, level: str, shape: object
) -> None:
    _plant(tree, level, shape, canaries.top / "trash")
    with pytest.raises(Unusable):
        staging.prepare()
    assert staging.ready().rolled_back == 0  # nothing of ours to recover there
    txn_id, left = _detach(staging, root, "d1")
    assert [entry.path for entry in left] == ["d1"]  # the caller removes it in place
    assert txn_id == ""
    txn = staging.begin()
    with pytest.raises(AtomicUnsupported):
        txn.stage(root, None, [_entry(root, "d2")], [])
    with pytest.raises(AtomicUnsupported), staging.lock(exclusive=True):
        pass
    with staging.lock(exclusive=False):  # a plain batch runs without the lock
        pass
    assert (tree / "d2" / "sub" / "f").exists()


@pytest.mark.parametrize("level", [".stepd", ".stepd/trash"])
def test_a_mount_at_a_level_of_the_area_is_refused(
    root: Root, staging: Staging, tree: Path, canaries: Canaries, level: str
) -> None:
    (tree / level).mkdir(mode=0o700, parents=True)
    with skip_if_not_permitted(), bind_mount(canaries.top / "trash", tree / level):
        with pytest.raises(Unusable, match="mount point"):
            staging.prepare()
        _, left = _detach(staging, root, "d1")
        assert len(left) == 1


def test_a_symlink_in_place_of_the_lock_is_refused(
    root: Root, staging: Staging, tree: Path, canaries: Canaries
) -> None:
    (tree / ".stepd" / "trash").mkdir(mode=0o700, parents=True)
    (tree / ".stepd").chmod(0o700)
    (tree / ".stepd" / "lock").symlink_to(canaries.top / "lock")
    with pytest.raises(Unusable, match="symbolic link"):
        staging.prepare()
    with pytest.raises(AtomicUnsupported), staging.lock(exclusive=True):
        pass


def test_an_area_moved_out_of_the_root_is_never_used_again(
    root: Root, staging: Staging, tree: Path, canaries: Canaries
) -> None:
    """A detached directory is left in the moved area; the next delete makes the area anew
    in the root, and the purger frees nothing in the moved one."""
    first, left = _detach(staging, root, "d1")
    assert left == []
    moved = canaries.top / "moved"
    (tree / ".stepd").rename(moved)
    canaries.before = canaries.records()  # the moved area is outside now: it must not change
    second, left = _detach(staging, root, "d2")
    assert left == []
    assert os.listdir(tree / ".stepd" / "trash") == [second]
    purger = Purger(staging, background=False)
    purger.dispose(first, 1, None)
    purger.dispose(second, 1, None)
    assert os.listdir(tree / ".stepd" / "trash") == []
    assert purger.backlog().entries == 0
    assert (moved / "trash" / first / "0" / "sub" / "f").read_text() == "d1"


def test_an_area_replaced_by_a_symlink_while_in_use_is_dropped(
    root: Root, staging: Staging, tree: Path, canaries: Canaries
) -> None:
    staging.prepare()
    (tree / ".stepd").rename(tree / "old-area")
    (tree / ".stepd").symlink_to(canaries.top)
    _, left = _detach(staging, root, "d1")
    assert [entry.path for entry in left] == ["d1"]
    with pytest.raises(AtomicUnsupported):
        staging.begin().stage(root, None, [_entry(root, "d2")], [])
    (tree / ".stepd").unlink()  # gone: made anew at the next use
    txn_id, left = _detach(staging, root, "d3")
    assert left == []
    assert os.listdir(tree / ".stepd" / "trash") == [txn_id]


def test_an_area_removed_while_running_is_made_anew_every_time(
    root: Root, staging: Staging, tree: Path, canaries: Canaries
) -> None:
    for name in ("d1", "d2", "d3"):
        staging.prepare()
        shutil.rmtree(tree / ".stepd")
        txn_id, left = _detach(staging, root, name)
        assert left == []
        assert os.listdir(tree / ".stepd" / "trash") == [txn_id]


def test_an_area_removed_before_its_owners_directory_is_made_is_busy(
    root: Root, tree: Path
) -> None:
    """The area removed between its making and the making of the instance's lock: the
    instance cannot hold it, and says so as ``Busy`` (a plain delete then runs in place,
    an atomic batch answers 409), never as a failure of stepd's own."""
    area = StateArea(root)
    with area.using() as opened:
        assert opened is not None
        shutil.rmtree(tree / ".stepd")
        with pytest.raises(Busy):
            take_ownership(opened, "instance-a")
        assert opened.owner_fd is None
    area.close()


def test_a_trash_directory_removed_mid_delete_falls_back_to_in_place(
    root: Root, staging: Staging, tree: Path
) -> None:
    detachment = staging.detachment()
    assert detachment.detach(root, [_entry(root, "d1")]) == []
    shutil.rmtree(tree / ".stepd")  # the directory the next entry would move into is gone
    left = detachment.detach(root, [_entry(root, "d2")])
    detachment.close()
    assert [entry.path for entry in left] == ["d2"]
    assert (tree / "d2" / "sub" / "f").exists(), "not reported moved while still in place"


def test_an_atomic_batch_whose_area_was_replaced_cannot_claim_a_rollback(
    root: Root, staging: Staging, tree: Path, canaries: Canaries
) -> None:
    txn = staging.begin()
    txn.stage(root, None, [_entry(root, "d1")], [])
    (tree / ".stepd").rename(canaries.top / "moved")
    canaries.before = canaries.records()
    with pytest.raises(Exception, match="moved or replaced"):
        txn.stage(root, None, [_entry(root, "d2")], [])
    assert txn.rollback() is False
    assert (tree / "d2" / "sub" / "f").exists()


@pytest.mark.parametrize("atomic", [False, True])
def test_a_batch_over_a_replaced_area_recovers_the_new_one_first(
    root: Root, staging: Staging, tree: Path, canaries: Canaries, atomic: bool
) -> None:
    """A batch checks the area once for recovery and its lock: over an area replaced by a
    copy holding an unfinished atomic batch, it rolls that back, then runs; the area
    moved out is never touched again."""
    purger = Purger(staging, background=False)
    step = BatchStep("step-0", "delete", DeleteConfig(paths=("d2",)))
    request = BatchRequest("v1", None, atomic=atomic, steps=(step,))
    assert run_batch(root, purger, request).failed is None  # the area opened and recovered
    killed = Staging(root).begin()  # another process, killed mid-batch
    killed.stage(root, None, [_entry(root, "d1")], [])
    shutil.copytree(tree / ".stepd", tree / "copy", symlinks=True)
    (tree / ".stepd").rename(canaries.top / "moved")
    (tree / "copy").rename(tree / ".stepd")
    canaries.before = canaries.records()
    (tree / "d2").mkdir()
    result = run_batch(root, purger, request)
    assert [s.status for s in result.steps] == [StepStatus.SUCCEEDED]
    assert (tree / "d1" / "sub" / "f").read_text() == "d1"
    assert not (tree / "d2").exists()
    assert os.listdir(tree / ".stepd" / "trash") == []
