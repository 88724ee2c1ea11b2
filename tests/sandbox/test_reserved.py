"""The reserved top-level name is recognised by what it is, not only by how it is spelt.

On a case-insensitive volume ``.STEPD`` opens ``.stepd``; a Windows server also answers to
an 8.3 short name. No filesystem here folds case, so the same directory is given a second
name with a bind mount (which the sandbox would refuse as a mount anyway: the tests check
it is refused as *reserved*, which only an identity check can tell), and the comparison
itself is tested on its own. Both resolution modes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.sandbox import Root
from app.sandbox.errors import InvalidPath
from app.sandbox.reserved import ReservedNames
from app.steps.workspace import RESERVED, RESERVED_NAME
from tests.support.mounts import bind_mount, skip_if_not_permitted

ALIAS = "ALIAS"


@pytest.fixture
def reserved_dir(root_dir: Path) -> Path:
    (root_dir / RESERVED_NAME / "state").mkdir(parents=True)
    (root_dir / RESERVED_NAME / "state" / "canary").write_text("no request may reach this")
    (root_dir / "plain").mkdir()
    (root_dir / "file.txt").write_text("x")
    return root_dir / RESERVED_NAME


@pytest.fixture
def alias(root_dir: Path, reserved_dir: Path) -> Iterator[Path]:
    """``ALIAS``: the reserved directory under another name, as a case-insensitive volume
    would show it."""
    (root_dir / ALIAS).mkdir()
    (root_dir / "to-alias").symlink_to(ALIAS)
    with skip_if_not_permitted(), bind_mount(reserved_dir, root_dir / ALIAS):
        yield root_dir / ALIAS


@pytest.mark.parametrize(
    "path", [ALIAS, f"{ALIAS}/state", f"{ALIAS}/state/canary", "to-alias/state/canary"]
)
def test_a_path_through_it_is_reserved(root: Root, alias: Path, path: str) -> None:
    with pytest.raises(InvalidPath, match="reserved"):
        root.lookup(path)
    with pytest.raises(InvalidPath, match="reserved"):
        root.remove(path)
    assert (alias / "state" / "canary").exists()


def test_it_is_not_a_workspace(root: Root, alias: Path) -> None:
    with pytest.raises(InvalidPath):
        root.open_subdir(ALIAS)


def test_it_cannot_be_moved_out(root: Root, alias: Path, root_dir: Path) -> None:
    with Root.open(root_dir / "plain") as dest, pytest.raises(InvalidPath, match="reserved"):
        root.move_out(ALIAS, dest, "taken")


@pytest.mark.parametrize("pattern", [ALIAS, f"{ALIAS}/*", f"{ALIAS}/**", f"{{{ALIAS},x}}/state"])
def test_a_glob_never_enters_it(root: Root, alias: Path, pattern: str) -> None:
    assert root.glob(pattern) == []


def test_other_names_are_not_reserved(root: Root, alias: Path) -> None:
    assert root.lookup("plain") is not None
    assert root.lookup("file.txt") is not None
    assert root.glob("pla*") == ["plain"]


class TestComparison:
    """``ReservedNames`` alone: what a case-folding filesystem would hand it."""

    @pytest.fixture
    def names(self, reserved_dir: Path, root_dir: Path) -> Iterator[ReservedNames]:
        fd = os.open(root_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield ReservedNames(fd, RESERVED)
        finally:
            os.close(fd)

    def test_the_reserved_directory_under_any_spelling_is_reserved(
        self, names: ReservedNames, reserved_dir: Path
    ) -> None:
        same = os.lstat(reserved_dir)
        for spelling in (".STEPD", ".Stepd", "STEPD~1", ".stepd.", RESERVED_NAME):
            assert names.holds(spelling, same)

    def test_another_directory_is_not(self, names: ReservedNames, root_dir: Path) -> None:
        assert not names.holds(".STEPD", os.lstat(root_dir / "plain"))
        assert not names.holds("plain", None)

    def test_the_spelling_alone_is_reserved_even_when_absent(self, names: ReservedNames) -> None:
        assert names.holds(RESERVED_NAME, None)

    def test_it_follows_the_reserved_directory_as_it_is_now(
        self, names: ReservedNames, reserved_dir: Path, root_dir: Path
    ) -> None:
        old = os.lstat(reserved_dir)
        os.rename(reserved_dir, root_dir / "moved-away")
        reserved_dir.mkdir()
        assert names.holds(".STEPD", os.lstat(reserved_dir))
        assert not names.holds("moved-away", old)

    def test_only_a_directory_of_another_spelling_costs_a_look(
        self, names: ReservedNames, root_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        looks: list[None] = []
        real = names.identities
        monkeypatch.setattr(names, "identities", lambda: looks.append(None) or real())
        names.holds(RESERVED_NAME, None)
        names.holds("file.txt", os.lstat(root_dir / "file.txt"))
        names.holds("gone", None)
        assert looks == []
        names.holds("plain", os.lstat(root_dir / "plain"))
        assert len(looks) == 1


def test_a_lookup_costs_at_most_one_look_and_a_workspace_none(
    root: Root, reserved_dir: Path, root_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root_dir / "plain" / "deeper").mkdir()
    (root_dir / "plain" / "deeper" / "f").write_text("x")
    looks: list[None] = []
    real = ReservedNames.identities

    def counted(self: ReservedNames) -> set[tuple[int, int]]:
        looks.append(None)
        return real(self)

    monkeypatch.setattr(ReservedNames, "identities", counted)
    for path in ("file.txt", "plain", "plain/deeper/f", "plain/deeper"):
        looks.clear()
        assert root.lookup(path) is not None
        assert len(looks) <= 1, path
    workspace = root.open_subdir("plain")
    assert workspace is not None
    with workspace:
        looks.clear()
        assert workspace.lookup("deeper/f") is not None
        assert workspace.glob("**/f") == ["deeper/f"]
        assert looks == []
