"""Glob segments never match ``.`` or ``..``, however they are spelt.

A pattern's plain ``.`` and ``..`` segments fold lexically, as a path's do (``p/q/..`` is
``p``). Any other spelling (escaped, from braces, classes, ``?``) is a pattern segment, and
a pattern segment never matches ``.`` or ``..``: ``p/q/\\.\\.`` must not delete ``p``,
nor lead out of the root, with openat2 and with the fallback walk alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.models.internal import DeleteConfig
from app.sandbox import Root
from app.sandbox.errors import OutsideRoot
from tests.steps.running import run_delete
from tests.support.snapshot import snapshot


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


SPELLINGS_OF_DOT = ["\\.", "{.,x}", "[.]", "{x,.}"]
SPELLINGS_OF_DOTDOT = [
    "\\.\\.",
    ".\\.",
    "\\..",
    "[.][.]",
    "[.].",
    ".[.]",
    ".?",
    "?.",
    "??",
    "[!x][!x]",
    "{..,x}",
    "{x,..}",
    "{..}",
    "{.,..}",
    "{[.][.],x}",
    "*",
    ".*",
    "*.",
]


@pytest.fixture
def nested(root_dir: Path) -> Path:
    (root_dir / "p" / "q" / "r").mkdir(parents=True)
    (root_dir / "p" / "q" / "x").write_text("x")
    (root_dir / "p" / "f.txt").write_text("f")
    return root_dir


@pytest.mark.parametrize("spelling", SPELLINGS_OF_DOT + SPELLINGS_OF_DOTDOT)
def test_no_spelling_of_a_dot_segment_matches_it(root: Root, nested: Path, spelling: str) -> None:
    for pattern in (f"p/q/{spelling}", f"p/q/{spelling}/", f"p/q/{spelling}/f.txt"):
        matches = root.glob(pattern)
        assert not any(match in ("p", "p/q", "p/f.txt") for match in matches), (pattern, matches)
        assert all(match.startswith("p/q/") for match in matches), (pattern, matches)
        assert not any({".", ".."} & set(match.split("/")) for match in matches), matches


@pytest.mark.parametrize("spelling", SPELLINGS_OF_DOT + SPELLINGS_OF_DOTDOT)
def test_deleting_with_one_deletes_nothing_above(root: Root, nested: Path, spelling: str) -> None:
    before = snapshot(nested, exclude=(nested / "p" / "q",))
    run_delete(root, DeleteConfig(paths=(f"p/q/{spelling}",), globs=True))
    assert snapshot(nested, exclude=(nested / "p" / "q",)) == before
    assert (nested / "p" / "q").is_dir()


def test_a_dot_segment_from_braces_is_only_that_alternative(root: Root, nested: Path) -> None:
    assert root.glob("p/q/{..,x}") == ["p/q/x"]
    assert root.glob("p/{.,q}/x") == ["p/q/x"]
    assert root.glob("p/{q/..,q}/r") == ["p/q/r"]


def test_plain_dot_segments_fold_like_a_path(root: Root, nested: Path) -> None:
    assert root.glob("p/q/..") == ["p"]
    assert root.glob("p/./q/../f.txt") == ["p/f.txt"]
    assert root.glob("p/{q,x}/../f.txt") == ["p/f.txt"]


@pytest.mark.parametrize("pattern", ["{..,x}", "{x,../*}", "{.,..}/x", "p/{../..,q}"])
def test_one_climbing_above_the_root_is_refused(root: Root, nested: Path, pattern: str) -> None:
    with pytest.raises(OutsideRoot):
        root.glob(pattern)
