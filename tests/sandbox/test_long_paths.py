"""Paths longer than PATH_MAX (4096 bytes) resolve alike with openat2 and the walk.

The kernel refuses to resolve such a path in one call (ENAMETOOLONG), yet every component
is a valid name: the entry exists and can be deleted, or is merely absent.
"""

from __future__ import annotations

from pathlib import Path

from app.sandbox import EntryKind, Root
from tests.support.trees import deep_tree

DEPTH = 1100  # 1100 * len("ddd/") = 4400 bytes


def test_deep_entry_is_found_and_removed(root: Root, root_dir: Path) -> None:
    with deep_tree(root_dir, DEPTH, name="ddd") as path:
        assert len(path) > 4096
        entry = root.lookup(path)
        assert entry is not None
        assert entry.kind is EntryKind.FILE
        assert root.remove(path)
        assert root.lookup(path) is None


def test_absent_long_path_is_absent(root: Root) -> None:
    assert root.lookup("/".join(["abc"] * DEPTH)) is None
