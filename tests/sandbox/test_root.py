"""``Root.lookup`` and ``Root.remove``: resolution beneath the root, never out of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.sandbox import EntryKind, Root
from app.sandbox.errors import InvalidPath, OutsideRoot, SymlinkLoop
from app.steps.workspace import RESERVED_NAME
from tests.support.snapshot import snapshot


def test_a_file_is_removed(root: Root, root_dir: Path) -> None:
    (root_dir / "a.txt").write_text("x")
    entry = root.lookup("a.txt")
    assert entry is not None
    assert entry.kind is EntryKind.FILE
    assert root.remove("a.txt") is True
    assert not (root_dir / "a.txt").exists()


def test_a_directory_is_removed_with_everything_in_it(root: Root, root_dir: Path) -> None:
    (root_dir / "out" / "x" / "y").mkdir(parents=True)
    (root_dir / "out" / "x" / "y" / "f").write_text("x")
    (root_dir / "out" / ".hidden").write_text("x")
    (root_dir / "keep").write_text("x")

    entry = root.lookup("out")
    assert entry is not None
    assert entry.kind is EntryKind.DIRECTORY
    assert root.remove("out") is True
    assert sorted(os.listdir(root_dir)) == ["keep"]


@pytest.mark.parametrize("spelling", ["link", "link/", "./link/"])
def test_a_symlink_is_removed_as_a_link_and_its_target_kept(
    root: Root, root_dir: Path, spelling: str
) -> None:
    (root_dir / "target").mkdir()
    (root_dir / "target" / "f").write_text("x")
    (root_dir / "link").symlink_to("target")

    entry = root.lookup(spelling)
    assert entry is not None
    assert entry.kind is EntryKind.SYMLINK
    assert root.remove(spelling) is True
    assert not (root_dir / "link").is_symlink()
    assert (root_dir / "target" / "f").read_text() == "x"


@pytest.mark.parametrize("spelling", ["out-link", "out-link/"])
def test_a_symlink_leading_out_is_removed_as_a_link(
    root: Root, root_dir: Path, outside: Path, spelling: str
) -> None:
    (root_dir / "out-link").symlink_to(outside)
    before = snapshot(outside)
    assert root.remove(spelling) is True
    assert not (root_dir / "out-link").is_symlink()
    assert snapshot(outside) == before


def test_a_dangling_symlink_is_removed(root: Root, root_dir: Path) -> None:
    (root_dir / "dangling").symlink_to("nowhere")
    entry = root.lookup("dangling")
    assert entry is not None
    assert entry.kind is EntryKind.SYMLINK
    assert root.remove("dangling/") is True
    assert not (root_dir / "dangling").is_symlink()


@pytest.mark.parametrize(
    "path",
    ["missing", "missing/child", "no_such_dir/child.txt", "plain.txt/child", "plain.txt/a/b"],
)
def test_missing_targets_and_parents_are_absent(root: Root, root_dir: Path, path: str) -> None:
    (root_dir / "plain.txt").write_text("x")
    assert root.lookup(path) is None
    assert root.remove(path) is False
    assert (root_dir / "plain.txt").read_text() == "x"


def test_a_symlink_to_a_file_as_parent_is_absent(root: Root, root_dir: Path) -> None:
    (root_dir / "plain.txt").write_text("x")
    (root_dir / "l").symlink_to("plain.txt")
    assert root.remove("l/child") is False
    assert (root_dir / "plain.txt").read_text() == "x"


def test_a_dangling_intermediate_symlink_is_absent(root: Root, root_dir: Path) -> None:
    (root_dir / "l").symlink_to("nowhere")
    assert root.lookup("l/child") is None
    assert root.remove("l/child") is False


@pytest.mark.parametrize("link", ["sub", "./sub/", "other/../sub", "sub/deeper/.."])
def test_an_intermediate_symlink_inside_the_root_is_followed(
    root: Root, root_dir: Path, link: str
) -> None:
    (root_dir / "sub" / "deeper").mkdir(parents=True)
    (root_dir / "other").mkdir()
    (root_dir / "sub" / "f.txt").write_text("x")
    (root_dir / "l").symlink_to(link)

    entry = root.lookup("l/f.txt")
    assert entry is not None
    assert entry.path == "l/f.txt"
    assert root.remove("l/f.txt") is True
    assert not (root_dir / "sub" / "f.txt").exists()
    assert (root_dir / "l").is_symlink()


def test_chained_symlinks_inside_the_root_are_followed(root: Root, root_dir: Path) -> None:
    (root_dir / "a" / "b").mkdir(parents=True)
    (root_dir / "a" / "b" / "f").write_text("x")
    (root_dir / "a" / "up").symlink_to("..")
    (root_dir / "l1").symlink_to("a/up/l2")
    (root_dir / "l2").symlink_to("a/b")
    assert root.remove("l1/f") is True
    assert not (root_dir / "a" / "b" / "f").exists()


def test_two_spellings_of_one_entry_share_an_identity(root: Root, root_dir: Path) -> None:
    (root_dir / "sub").mkdir()
    (root_dir / "sub" / "f").write_text("x")
    (root_dir / "l").symlink_to("sub")
    via_link, direct = root.lookup("l/f"), root.lookup("./sub/f")
    assert via_link is not None
    assert direct is not None
    assert via_link.identity == direct.identity
    assert via_link.path != direct.path


@pytest.mark.parametrize("kind", ["relative", "absolute", "nested-relative"])
def test_an_intermediate_symlink_leading_out_is_refused(
    root: Root, root_dir: Path, outside: Path, kind: str
) -> None:
    (root_dir / "sub").mkdir()
    if kind == "relative":
        (root_dir / "l").symlink_to("../outside")
    elif kind == "absolute":
        (root_dir / "l").symlink_to(outside)
    else:
        (root_dir / "sub" / "up").symlink_to("../..")
        (root_dir / "l").symlink_to("sub/up/outside")
    before = snapshot(outside)

    for path in ("l/precious.txt", "l/precious.txt/", "./l/precious.txt", "l/nothing"):
        with pytest.raises(OutsideRoot):
            root.lookup(path)
        with pytest.raises(OutsideRoot):
            root.remove(path)
    assert snapshot(outside) == before


def test_an_absolute_symlink_is_refused_even_when_it_points_inside(
    root: Root, root_dir: Path
) -> None:
    (root_dir / "sub").mkdir()
    (root_dir / "sub" / "f").write_text("x")
    (root_dir / "l").symlink_to(root_dir / "sub")
    with pytest.raises(OutsideRoot):
        root.remove("l/f")
    assert (root_dir / "sub" / "f").exists()


@pytest.mark.parametrize(
    "links", [{"self": "self"}, {"a": "b", "b": "a"}, {"a": "b/x", "b": "a/y"}]
)
def test_symlink_loops_are_reported(root: Root, root_dir: Path, links: dict[str, str]) -> None:
    for name, target in links.items():
        (root_dir / name).symlink_to(target)
    first = next(iter(links))
    with pytest.raises(SymlinkLoop):
        root.lookup(f"{first}/child")
    with pytest.raises(SymlinkLoop):
        root.remove(f"{first}/child")
    assert root.remove(first) is True
    assert not (root_dir / first).is_symlink()


class TestReservedName:
    """The root's top-level ``.stepd`` cannot be reached by any spelling."""

    @pytest.fixture(autouse=True)
    def _reserved(self, root_dir: Path) -> None:
        (root_dir / RESERVED_NAME / "state").mkdir(parents=True)
        (root_dir / RESERVED_NAME / "state" / "f").write_text("x")
        (root_dir / "sub").mkdir()

    @pytest.mark.parametrize(
        "path",
        [
            ".stepd",
            ".stepd/",
            "./.stepd",
            ".stepd/state",
            ".stepd/state/f",
            "sub/../.stepd",
            "sub/../.stepd/state",
        ],
    )
    def test_literal_spellings_are_invalid(self, root: Root, root_dir: Path, path: str) -> None:
        with pytest.raises(InvalidPath, match="reserved"):
            root.lookup(path)
        with pytest.raises(InvalidPath, match="reserved"):
            root.remove(path)
        assert (root_dir / RESERVED_NAME / "state" / "f").exists()

    @pytest.mark.parametrize(
        ("link", "target", "path"),
        [
            ("l", ".", "l/.stepd"),
            ("l", ".", "l/.stepd/state"),
            ("l", ".stepd", "l/state"),
            ("l", ".stepd/state", "l/f"),
            ("sub/up", "..", "sub/up/.stepd"),
            ("sub/up", "../.stepd", "sub/up/state/f"),
        ],
    )
    def test_spellings_through_symlinks_are_invalid(
        self, root: Root, root_dir: Path, link: str, target: str, path: str
    ) -> None:
        (root_dir / link).symlink_to(target)
        with pytest.raises(InvalidPath, match="reserved"):
            root.lookup(path)
        with pytest.raises(InvalidPath, match="reserved"):
            root.remove(path)
        assert (root_dir / RESERVED_NAME / "state" / "f").exists()

    def test_the_name_is_reserved_only_at_the_top(self, root: Root, root_dir: Path) -> None:
        (root_dir / "sub" / RESERVED_NAME).mkdir()
        assert root.remove("sub/.stepd") is True

    def test_a_workspace_does_not_inherit_the_reservation(self, root: Root, root_dir: Path) -> None:
        (root_dir / "sub" / RESERVED_NAME).mkdir()
        workspace = root.open_subdir("sub")
        assert workspace is not None
        with workspace:
            assert workspace.remove(".stepd") is True

    def test_the_reserved_name_is_not_a_workspace(self, root: Root) -> None:
        with pytest.raises(InvalidPath):
            root.open_subdir(RESERVED_NAME)


class TestOpenSubdir:
    def test_absent_workspace_is_none(self, root: Root) -> None:
        assert root.open_subdir("nope") is None

    def test_a_file_is_not_a_workspace(self, root: Root, root_dir: Path) -> None:
        (root_dir / "f").write_text("x")
        assert root.open_subdir("f") is None

    @pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/abs"])
    def test_names_that_are_not_one_segment_are_invalid(self, root: Root, name: str) -> None:
        with pytest.raises(InvalidPath):
            root.open_subdir(name)

    def test_a_symlinked_workspace_is_refused(self, root: Root, root_dir: Path) -> None:
        (root_dir / "real").mkdir()
        (root_dir / "ws").symlink_to("real")
        with pytest.raises(OutsideRoot):
            root.open_subdir("ws")

    def test_the_workspace_confines_its_paths(self, root: Root, root_dir: Path) -> None:
        (root_dir / "ws").mkdir()
        (root_dir / "sibling.txt").write_text("x")
        (root_dir / "ws" / "l").symlink_to("..")
        workspace = root.open_subdir("ws")
        assert workspace is not None
        with workspace:
            with pytest.raises(OutsideRoot):
                workspace.remove("../sibling.txt")
            with pytest.raises(OutsideRoot):
                workspace.remove("l/sibling.txt")
        assert (root_dir / "sibling.txt").exists()
