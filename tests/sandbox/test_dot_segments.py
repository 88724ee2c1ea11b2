"""Glob segments that spell ``.`` or ``..`` through escapes never lead out of the root.

``split`` folds a plain ``..`` lexically, but ``\\.\\.`` only becomes ``..`` when the
segment is parsed; the walk must then refuse to descend through it, with openat2 and
with the fallback walk alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.sandbox import Root


@pytest.fixture
def tree(root_dir: Path) -> Path:
    (root_dir / "out").mkdir()
    (root_dir / "keep.txt").write_text("keep")
    return root_dir


@pytest.mark.parametrize(
    "pattern",
    [
        r"\.\./outside/*",
        r"\.\./outside/precious.txt",
        r"\.\./**",
        r"out/\.\./keep.txt",
        r"out/\.\./\.\./outside/*",
        r"{\.\.,out}/*",
    ],
)
def test_escaped_parent_segment_matches_nothing_through_it(
    root: Root, tree: Path, pattern: str
) -> None:
    assert root.glob(pattern) == []
