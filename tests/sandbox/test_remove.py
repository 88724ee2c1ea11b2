"""Removing entries: special files, deep trees, symlinks inside trees, and mount points."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.sandbox import EntryKind, Root
from app.sandbox.errors import OutsideRoot
from tests.support.mounts import bind_mount, skip_if_not_permitted
from tests.support.snapshot import snapshot
from tests.support.trees import deep_tree


@pytest.fixture
def unix_socket(root_dir: Path) -> Iterator[Path]:
    """A listening Unix socket bound at ``root_dir/sock``."""
    path = root_dir / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        yield path


def test_a_fifo_is_removed_without_blocking(root: Root, root_dir: Path) -> None:
    os.mkfifo(root_dir / "fifo")
    entry = root.lookup("fifo")
    assert entry is not None
    assert entry.kind is EntryKind.OTHER
    assert root.remove("fifo/") is True
    assert not os.path.lexists(root_dir / "fifo")


def test_a_socket_is_removed(root: Root, root_dir: Path, unix_socket: Path) -> None:
    assert root.remove("sock") is True
    assert not os.path.lexists(unix_socket)


def test_special_files_inside_a_directory_go_with_it(root: Root, root_dir: Path) -> None:
    (root_dir / "d" / "e").mkdir(parents=True)
    os.mkfifo(root_dir / "d" / "fifo")
    os.mkfifo(root_dir / "d" / "e" / "fifo")
    assert root.remove("d") is True
    assert not (root_dir / "d").exists()


def test_a_fifo_as_intermediate_component_is_absent(root: Root, root_dir: Path) -> None:
    os.mkfifo(root_dir / "fifo")
    assert root.remove("fifo/child") is False
    assert os.path.lexists(root_dir / "fifo")


def test_symlinks_inside_a_removed_tree_are_not_followed(
    root: Root, root_dir: Path, outside: Path
) -> None:
    (root_dir / "d" / "e").mkdir(parents=True)
    (root_dir / "d" / "out").symlink_to(outside)
    (root_dir / "d" / "e" / "up").symlink_to("../../..")
    (root_dir / "d" / "e" / "rel").symlink_to("../../../outside")
    (root_dir / "keep").mkdir()
    (root_dir / "d" / "keep-link").symlink_to("../keep")
    before = snapshot(outside)

    assert root.remove("d") is True
    assert not (root_dir / "d").exists()
    assert (root_dir / "keep").is_dir()
    assert snapshot(outside) == before


@pytest.fixture
def deep(root_dir: Path) -> Iterator[None]:
    """``d/d/.../d`` 1500 levels deep (removed afterwards even if the test failed)."""
    with deep_tree(root_dir, 1500, leaf="bottom.txt"):
        yield


@pytest.mark.usefixtures("deep")
def test_a_tree_deeper_than_the_recursion_limit_is_removed(root: Root, root_dir: Path) -> None:
    (root_dir / "keep").write_text("x")
    entry = root.lookup("d")
    assert entry is not None
    assert root.remove("d") is True
    assert sorted(os.listdir(root_dir)) == ["keep"]


def test_a_wide_tree_is_removed(root: Root, root_dir: Path) -> None:
    for i in range(50):
        (root_dir / "w" / f"d{i}").mkdir(parents=True)
        (root_dir / "w" / f"d{i}" / "f").write_text("x")
    assert root.remove("w") is True
    assert not (root_dir / "w").exists()


class TestMountPoints:
    """Like ``rm --one-file-system``: a mount point is never crossed, and nothing is
    deleted when one is in the way (bind mounts inside the tmp dirs)."""

    @pytest.fixture
    def mounted(self, outside: Path) -> Path:
        """An outside folder with content, to be bind-mounted inside the root."""
        source = outside / "mounted"
        (source / "inner").mkdir(parents=True)
        (source / "inner" / "data.txt").write_text("mounted data")
        return source

    def test_a_mount_point_as_target_is_refused(
        self, root: Root, root_dir: Path, outside: Path, mounted: Path
    ) -> None:
        (root_dir / "m").mkdir()
        before = snapshot(outside)
        with skip_if_not_permitted(), bind_mount(mounted, root_dir / "m"):
            for path in ("m", "m/"):
                with pytest.raises(OutsideRoot):
                    root.lookup(path)
                with pytest.raises(OutsideRoot):
                    root.remove(path)
            assert (root_dir / "m" / "inner" / "data.txt").exists()
        assert snapshot(outside) == before

    def test_a_mount_point_on_the_way_is_refused(
        self, root: Root, root_dir: Path, outside: Path, mounted: Path
    ) -> None:
        (root_dir / "m").mkdir()
        (root_dir / "l").symlink_to("m")
        before = snapshot(outside)
        with skip_if_not_permitted(), bind_mount(mounted, root_dir / "m"):
            for path in ("m/inner", "m/inner/data.txt", "l/inner/data.txt", "m/missing"):
                with pytest.raises(OutsideRoot):
                    root.lookup(path)
                with pytest.raises(OutsideRoot):
                    root.remove(path)
        assert snapshot(outside) == before

    @pytest.mark.parametrize("target", ["d", "d é", "d with space", "d é and\\tab"])
    def test_a_mount_point_inside_a_target_directory_is_refused_before_deleting(
        self, root: Root, root_dir: Path, outside: Path, mounted: Path, target: str
    ) -> None:
        # mountinfo escapes spaces, tabs and backslashes; the names must still be matched.
        (root_dir / target / "sub" / "m").mkdir(parents=True)
        (root_dir / target / "a-sibling.txt").write_text("x")
        (root_dir / target / "sub" / "z-sibling.txt").write_text("x")
        inside_before = snapshot(root_dir)
        outside_before = snapshot(outside)
        with skip_if_not_permitted(), bind_mount(mounted, root_dir / target / "sub" / "m"):
            with pytest.raises(OutsideRoot):
                root.lookup(target)
            with pytest.raises(OutsideRoot):
                root.remove(target)
        assert snapshot(root_dir) == inside_before
        assert snapshot(outside) == outside_before

    def test_a_file_mount_point_as_target_is_refused(
        self, root: Root, root_dir: Path, outside: Path
    ) -> None:
        (root_dir / "f").write_text("placeholder")
        before = snapshot(outside)
        with skip_if_not_permitted(), bind_mount(outside / "precious.txt", root_dir / "f"):
            with pytest.raises(OutsideRoot):
                root.lookup("f")
            with pytest.raises(OutsideRoot):
                root.remove("f")
        assert snapshot(outside) == before
        assert (root_dir / "f").read_text() == "placeholder"

    def test_a_file_mount_point_inside_a_target_directory_is_refused(
        self, root: Root, root_dir: Path, outside: Path
    ) -> None:
        (root_dir / "d").mkdir()
        (root_dir / "d" / "f").write_text("placeholder")
        before = snapshot(root_dir)
        with (
            skip_if_not_permitted(),
            bind_mount(outside / "precious.txt", root_dir / "d" / "f"),
            pytest.raises(OutsideRoot),
        ):
            root.remove("d")
        assert snapshot(root_dir) == before

    def test_a_workspace_that_is_a_mount_point_is_refused(
        self, root: Root, root_dir: Path, mounted: Path
    ) -> None:
        (root_dir / "ws").mkdir()
        with (
            skip_if_not_permitted(),
            bind_mount(mounted, root_dir / "ws"),
            pytest.raises(OutsideRoot),
        ):
            root.open_subdir("ws")
