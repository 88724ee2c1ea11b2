"""Paths longer than PATH_MAX (4096 bytes) resolve alike with openat2 and the walk.

Callers may not send such paths (``paths.split``'s limits), but a glob walk finds them in
a deep tree and looks them up with ``limited=False``. The kernel refuses to resolve them
in one call (ENAMETOOLONG), yet every component is a valid name: the entry exists and can
be deleted, or is merely absent.
"""

from __future__ import annotations

from pathlib import Path

from app.sandbox import EntryKind, Root
from tests.support.trees import deep_tree

DEPTH = 1100  # 1100 * len("ddd/") = 4400 bytes


def test_deep_entry_is_found_and_removed(root: Root, root_dir: Path) -> None:
    with deep_tree(root_dir, DEPTH, name="ddd") as path:
        assert len(path) > 4096
        entry = root.lookup(path, limited=False)
        assert entry is not None
        assert entry.kind is EntryKind.FILE
        assert root.remove(path, limited=False)
        assert root.lookup(path, limited=False) is None


def test_absent_long_path_is_absent(root: Root) -> None:
    assert root.lookup("/".join(["abc"] * DEPTH), limited=False) is None


def test_symlink_climbing_far_above_a_deep_walk_resolves(root: Root, root_dir: Path) -> None:
    # The walk keeps few descriptors open; climbing 70 levels re-opens the closed ones.
    with deep_tree(root_dir, 100, name="d", leaf="bottom.txt"):
        depth_30 = root_dir.joinpath(*["d"] * 30)
        (depth_30 / "mark.txt").write_text("found")
        root_dir.joinpath(*["d"] * 100, "up").symlink_to("../" * 70)
        path = "/".join(["d"] * 100 + ["up", "mark.txt"])
        entry = root.lookup(path)
        assert entry is not None
        assert entry.kind is EntryKind.FILE
        assert root.remove(path)
        assert not (depth_30 / "mark.txt").exists()
