"""``Root.move_out`` / ``move_in``: entries leave the tree whole and come back whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.sandbox import Root
from app.sandbox.errors import Busy, CrossDevice, InvalidPath


@pytest.fixture
def aside(root: Root) -> Iterator[Root]:
    """A directory beside the tree, as the staging area is: reserved, same filesystem."""
    with root.open_private(".stepd") as private:
        yield private


def test_moves_a_symlink_as_a_link(root: Root, root_dir: Path, aside: Root) -> None:
    (root_dir / "target").write_text("t")
    (root_dir / "link").symlink_to("target")
    entry = root.lookup("link")
    assert entry is not None
    assert root.move_out(entry.real_path, aside, "0")
    assert os.readlink(root_dir / ".stepd" / "0") == "target"
    assert (root_dir / "target").read_text() == "t"


def test_real_path_resolves_symlinked_parents(root: Root, root_dir: Path, aside: Root) -> None:
    (root_dir / "real").mkdir()
    (root_dir / "real" / "f").write_text("f")
    (root_dir / "alias").symlink_to("real")
    entry = root.lookup("alias/f")
    assert entry is not None
    assert entry.real_path == "real/f"
    assert root.move_out(entry.real_path, aside, "0")
    assert not (root_dir / "real" / "f").exists()


def test_move_in_restores_entry_and_parent_times(root: Root, root_dir: Path, aside: Root) -> None:
    (root_dir / "d").mkdir()
    (root_dir / "d" / "f").write_text("f")
    os.utime(root_dir / "d", ns=(111, 222))
    entry = root.lookup("d/f")
    assert entry is not None
    assert entry.parent_times == (111, 222)
    assert root.move_out(entry.real_path, aside, "0")
    assert root.move_in(aside, "0", entry.real_path, entry.parent_times)
    assert (root_dir / "d" / "f").read_text() == "f"
    assert (root_dir / "d").stat().st_mtime_ns == 222


def test_move_in_never_replaces(root: Root, root_dir: Path, aside: Root) -> None:
    (root_dir / "f").write_text("old")
    entry = root.lookup("f")
    assert entry is not None
    root.move_out(entry.real_path, aside, "0")
    (root_dir / "f").write_text("new")
    assert not root.move_in(aside, "0", "f", entry.parent_times)
    assert (root_dir / "f").read_text() == "new"
    assert (root_dir / ".stepd" / "0").read_text() == "old"


def test_move_in_needs_the_parent(root: Root, root_dir: Path, aside: Root) -> None:
    (root_dir / "d").mkdir()
    (root_dir / "d" / "f").write_text("f")
    root.move_out("d/f", aside, "0")
    (root_dir / "d").rmdir()
    assert not root.move_in(aside, "0", "d/f", (0, 0))


def test_absent_entry_is_not_moved(root: Root, aside: Root) -> None:
    assert not root.move_out("nothing", aside, "0")


def test_symlink_in_a_real_path_is_busy(root: Root, root_dir: Path, aside: Root) -> None:
    (root_dir / "real").mkdir()
    (root_dir / "real" / "f").write_text("f")
    (root_dir / "alias").symlink_to("real")
    with pytest.raises(Busy):
        root.move_out("alias/f", aside, "0")


def test_reserved_name_cannot_be_moved(root: Root, aside: Root) -> None:
    with pytest.raises(InvalidPath):
        root.move_out(".stepd", aside, "0")


def test_another_filesystem_is_cross_device(root: Root, root_dir: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == root_dir.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem")
    (root_dir / "f").write_text("f")
    with Root.open(shm) as other, pytest.raises(CrossDevice):
        root.move_out("f", other, f"stepd-test-{os.getpid()}")
    assert (root_dir / "f").exists()
