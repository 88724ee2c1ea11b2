"""Path spelling: what a root-relative path means, and what it can never mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.sandbox import Root
from app.sandbox.errors import InvalidPath, OutsideRoot
from app.sandbox.paths import join, split


@pytest.mark.parametrize(
    ("spelling", "normalised"),
    [
        ("a/b", "a/b"),
        ("./a/b", "a/b"),
        ("a/b/", "a/b"),
        ("./a//b/./", "a/b"),
        ("a/x/../b", "a/b"),
        ("a/b/.", "a/b"),
    ],
)
def test_dot_segments_empty_segments_and_trailing_slash_are_ignored(
    spelling: str, normalised: str
) -> None:
    assert join(split(spelling)) == normalised


@pytest.mark.parametrize("spelling", ["./out", "out/", "./out/", "out//", "./././out"])
def test_every_spelling_removes_the_same_entry(root: Root, root_dir: Path, spelling: str) -> None:
    (root_dir / "out").mkdir()
    (root_dir / "out" / "f.txt").write_text("x")

    entry = root.lookup(spelling)
    assert entry is not None
    assert entry.path == "out"
    assert root.remove(spelling) is True
    assert not (root_dir / "out").exists()


@pytest.mark.parametrize("path", ["/etc/passwd", "/", "//a"])
def test_absolute_paths_are_invalid(root: Root, path: str) -> None:
    with pytest.raises(InvalidPath):
        root.lookup(path)
    with pytest.raises(InvalidPath):
        root.remove(path)


@pytest.mark.parametrize("path", ["a\x00b", "\x00", "dir/\x00"])
def test_nul_bytes_are_invalid(root: Root, root_dir: Path, path: str) -> None:
    (root_dir / "a").write_text("x")
    with pytest.raises(InvalidPath, match="NUL"):
        root.remove(path)
    assert (root_dir / "a").exists()


@pytest.mark.parametrize("path", [".", "./", "", "a/..", "a/b/../..", "./."])
def test_the_root_itself_is_invalid(root: Root, root_dir: Path, path: str) -> None:
    (root_dir / "a").mkdir()
    with pytest.raises(InvalidPath, match="root itself"):
        root.remove(path)
    assert (root_dir / "a").is_dir()


@pytest.mark.parametrize("path", ["..", "../outside/precious.txt", "a/../../outside", "a/../.."])
def test_dot_dot_climbing_out_is_outside(root: Root, root_dir: Path, path: str) -> None:
    (root_dir / "a").mkdir()
    with pytest.raises(OutsideRoot):
        root.remove(path)
    assert (root_dir.parent / "outside" / "precious.txt").read_text() == "keep me"


def test_dot_dot_that_stays_inside_is_fine(root: Root, root_dir: Path) -> None:
    (root_dir / "a").mkdir()
    (root_dir / "b.txt").write_text("x")
    assert root.remove("a/../b.txt") is True
    assert not (root_dir / "b.txt").exists()
    assert (root_dir / "a").is_dir()


def test_errors_name_the_path_relative_to_the_root_only(root: Root, root_dir: Path) -> None:
    with pytest.raises(OutsideRoot) as caught:
        root.remove("../x")
    assert str(root_dir) not in str(caught.value)
    assert caught.value.path == "../x"
