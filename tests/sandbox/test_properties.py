"""Properties: whatever the path and whatever the tree, nothing outside the workspace changes.

Trees are small and generated with symlinks of every kind (relative and absolute, inside and
out, dangling, looping); paths are generated from segments that matter (``..``, ``.``,
empty ones, link names, odd unicode). Example counts are bounded to keep the suite fast.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.models.internal import DeleteConfig
from app.sandbox import Root
from app.sandbox.errors import InvalidPath, OutsideRoot, SandboxError
from app.sandbox.paths import split
from app.steps.errors import StepError
from app.steps.workspace import RESERVED, RESERVED_NAME
from tests.steps.running import open_workspace, run_delete
from tests.support.snapshot import snapshot

NAMES = ["a", "b", "l", "é", "a b", "\u202eRTL", "*", "[x]", ".stepd"]
SEGMENTS = [*NAMES, "..", ".", "", "...", "~", "\\", "outside", "sibling", "ws", "**"]
OUT = "<outside>"  # placeholder for the absolute path of the outside folder
LINK_TARGETS = [
    "a",
    "a/b",
    ".",
    "..",
    "../..",
    "../../..",
    "../outside",
    "../../outside",
    "../sibling",
    "../.stepd",
    "l",
    "nowhere",
    ".stepd",
    OUT,
    f"{OUT}/precious.txt",
    "/",
    "/tmp",
]

segment = st.sampled_from(SEGMENTS) | st.text(min_size=1, max_size=4).filter(
    lambda s: "/" not in s and "\x00" not in s
)
path_strings = st.builds(
    lambda lead, parts, trail: lead + "/".join(parts) + trail,
    st.sampled_from(["", "./", "/", "../"]),
    st.lists(segment, min_size=1, max_size=5),
    st.sampled_from(["", "/", "/.", "/.."]),
)


@dataclass(frozen=True)
class Node:
    path: tuple[str, ...]
    kind: str  # "file", "dir" or a symlink target


nodes = st.builds(
    Node,
    st.lists(st.sampled_from(NAMES[:4]), min_size=1, max_size=3).map(tuple),
    st.sampled_from(["file", "dir"]) | st.sampled_from(LINK_TARGETS),
)


def build(top: Path, tree: list[Node], outside: Path) -> None:
    """Create what of ``tree`` can be created (later nodes lose to earlier ones)."""
    for node in tree:
        target = top.joinpath(*node.path)
        if not target.parent.is_dir() or target.parent.is_symlink():
            continue
        if target.exists() or target.is_symlink():
            continue
        if node.kind == "file":
            target.write_text("/".join(node.path))
        elif node.kind == "dir":
            target.mkdir()
        else:
            target.symlink_to(node.kind.replace(OUT, str(outside)))


def make_base(base: Path) -> tuple[Path, Path]:
    """``base/outside`` and ``base/root`` with ``.stepd``, ``sibling`` and ``ws``.

    What must never change is named like what the generated paths name, so that any
    escape would find something to delete.
    """
    outside = base / "outside"
    root = base / "root"
    for protected in (outside, root / RESERVED_NAME, root / "sibling"):
        (protected / "b").mkdir(parents=True)
        (protected / "a").write_text("keep me")
        (protected / "b" / "a").write_text("keep me too")
        (protected / "l").symlink_to("b")
    (root / "ws").mkdir()
    return outside, root


@pytest.mark.parametrize("use_openat2", [True, False], ids=["openat2", "walk"])
@pytest.mark.parametrize("scope", ["root", "workspace"])
@settings(max_examples=50, deadline=None)
@example(tree=[Node(("l",), "../outside")], paths=["l/a", "l/b/"], globs=False)
@example(tree=[Node(("l",), OUT)], paths=["l/b/a"], globs=False)
@example(tree=[Node(("a", "l"), "../../outside")], paths=["*/l/*", "a/l/a"], globs=True)
@example(tree=[Node(("l",), "../sibling")], paths=["l/*"], globs=True)
@given(
    tree=st.lists(nodes, max_size=8),
    paths=st.lists(path_strings, min_size=1, max_size=4),
    globs=st.booleans(),
)
def test_nothing_outside_the_workspace_ever_changes(
    use_openat2: bool, scope: str, tree: list[Node], paths: list[str], globs: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outside, root = make_base(Path(tmp))
        workspace_dir = root if scope == "root" else root / "ws"
        build(workspace_dir, tree, outside)
        protected = [outside, root / RESERVED_NAME]
        if scope == "workspace":
            protected.append(root / "sibling")
        before = [snapshot(path) for path in protected]

        name = None if scope == "root" else "ws"
        with (
            Root.open(root, reserved=RESERVED, use_openat2=use_openat2) as top,
            open_workspace(top, name) as workspace,
        ):
            assert workspace is not None
            for path in paths:
                with contextlib.suppress(SandboxError, StepError):
                    run_delete(workspace, DeleteConfig(paths=(path,), globs=globs))

        assert [snapshot(path) for path in protected] == before
        assert workspace_dir.is_dir()
        assert not workspace_dir.is_symlink()


@settings(max_examples=300, deadline=None)
@given(path=st.one_of(path_strings, st.text(max_size=20)))
def test_normalised_paths_are_plain_relative_segments(path: str) -> None:
    try:
        parts = split(path)
    except (InvalidPath, OutsideRoot):
        return
    assert parts
    for part in parts:
        assert part not in ("", ".", "..")
        assert "/" not in part
        assert "\x00" not in part
    assert split("/".join(parts)) == parts
