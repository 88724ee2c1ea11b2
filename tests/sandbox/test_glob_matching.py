"""Matching a segment costs time linear in the name, whatever the pattern.

A segment is cut at its stars into fixed-width chunks, each looked for once, left to
right: no backtracking. We count the chunk searches (and the span each one scans) for
hostile patterns against the longest names, check the matcher against a plain
backtracking reference on small inputs, and, as a backstop only, run the pattern that
froze the server through a real walk with a generous timeout.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sandbox import Root
from app.sandbox.glob import GLOBSTAR, LiteralSegment, Segment, WildSegment, parse_segment
from app.sandbox.paths import MAX_SEGMENT_BYTES

FROZE_THE_SERVER = "*?*?*?*?*?*?*?*?*?*?*?*?*#"
HOSTILE = [
    FROZE_THE_SERVER,
    "*?" * 40 + "*#",
    "*a" * 30 + "*b",
    "a*" * 30 + "b",
    "*[a-z]" * 30 + "*!",
    "?*" * 60 + "?",
    "*" + "a?" * 20 + "*b",
    "*aa*aaa*aaaa*aaaaa*x",
    "[!b]*" * 25 + "c",
]
NAMES = [
    "values-production-environment.yaml",
    "a" * MAX_SEGMENT_BYTES,
    "a" * (MAX_SEGMENT_BYTES - 1) + "b",
    ("ab" * MAX_SEGMENT_BYTES)[:MAX_SEGMENT_BYTES],
    "x" * MAX_SEGMENT_BYTES,
]


class _Counted:
    """A chunk regex that counts its searches and the characters each may scan."""

    def __init__(self, compiled: re.Pattern[str], log: list[int]) -> None:
        self.compiled = compiled
        self.log = log

    def match(self, name: str, pos: int = 0) -> re.Match[str] | None:
        self.log.append(len(name) - pos)
        return self.compiled.match(name, pos)

    def search(self, name: str, pos: int, endpos: int) -> re.Match[str] | None:
        self.log.append(endpos - pos)
        return self.compiled.search(name, pos, endpos)


def _counted(wild: WildSegment, log: list[int]) -> WildSegment:
    def count(chunk: re.Pattern[str] | None) -> re.Pattern[str] | None:
        return None if chunk is None else _Counted(chunk, log)  # type: ignore[return-value]

    return dataclasses.replace(
        wild,
        head=count(wild.head),
        tail=count(wild.tail),
        middle=tuple(_Counted(chunk, log) for chunk in wild.middle),  # type: ignore[misc]
    )


@pytest.mark.parametrize("pattern", HOSTILE)
@pytest.mark.parametrize("name", NAMES, ids=lambda name: f"{name[:12]}..{len(name)}")
def test_each_chunk_is_looked_for_at_most_once(pattern: str, name: str) -> None:
    wild = parse_segment(pattern, pattern)
    assert isinstance(wild, WildSegment)
    chunks = (wild.head is not None) + (wild.tail is not None) + len(wild.middle)
    log: list[int] = []
    _counted(wild, log).matches(name)
    assert len(log) <= chunks
    assert all(span <= len(name) for span in log)


def test_the_pattern_that_froze_the_server_answers_at_once_through_a_walk(
    root_dir: Path,
) -> None:
    # A backstop, not a measurement: the old matcher needed minutes for this, and the
    # walk runs in a child process that the timeout can kill.
    (root_dir / NAMES[0]).write_text("x")
    (root_dir / ("a" * MAX_SEGMENT_BYTES)).write_text("x")
    (root_dir / ("x" * 50 + "#")).write_text("x")
    patterns = [FROZE_THE_SERVER, "*?" * 40 + "*#", "*a" * 60 + "*b"]
    code = (
        "import sys; from app.sandbox import Root\n"
        "with Root.open(sys.argv[1]) as root:\n"
        f"    print([root.glob(pattern) for pattern in {patterns!r}])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    hashed = "x" * 50 + "#"
    assert done.stdout.strip() == repr([[hashed], [hashed], []])


# The reference: textbook backtracking over the same atoms, on inputs small enough for it.
ATOMS = ["a", "b", ".", "*", "?", "[ab]", "[!a]", "[^b.]", "[a-b]", "\\*", "\\?", "\\[", "\\\\"]
NAME_CHARS = "ab.*?[\\"


def _atom_matches(atom: str, char: str) -> bool:
    if atom == "?":
        return True
    if atom.startswith("\\"):
        return char == atom[1]
    if atom.startswith("["):
        inside = atom[1:-1]
        negate = inside[0] in "!^"
        inside = inside[1:] if negate else inside
        hit = "a" <= char <= "b" if inside == "a-b" else char in inside
        return hit != negate
    return char == atom


def _reference(atoms: tuple[str, ...], name: str) -> bool:
    @cache
    def match(i: int, j: int) -> bool:
        if i == len(atoms):
            return j == len(name)
        if atoms[i] == "*":
            return any(match(i + 1, k) for k in range(j, len(name) + 1))
        return j < len(name) and _atom_matches(atoms[i], name[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _matches(segment: Segment, name: str) -> bool:
    if isinstance(segment, LiteralSegment):
        return segment.name == name
    assert isinstance(segment, WildSegment)
    return segment.matches(name)


@settings(max_examples=3000, deadline=None)
@given(
    atoms=st.lists(st.sampled_from(ATOMS), min_size=1, max_size=8).map(tuple),
    name=st.text(alphabet=NAME_CHARS, min_size=1, max_size=10),
)
def test_the_matcher_agrees_with_backtracking(atoms: tuple[str, ...], name: str) -> None:
    text = "".join(atoms)
    segment = parse_segment(text, text)
    if segment is GLOBSTAR:
        return
    assert _matches(segment, name) == _reference(atoms, name), (text, name)


@settings(max_examples=300, deadline=None)
@given(
    atoms=st.lists(st.sampled_from(["*", "?", "a", "[ab]"]), min_size=1, max_size=30).map(tuple),
    name=st.text(alphabet="ab", min_size=1, max_size=60),
)
def test_it_agrees_on_star_heavy_patterns_too(atoms: tuple[str, ...], name: str) -> None:
    text = "".join(atoms)
    segment = parse_segment(text, text)
    if segment is not GLOBSTAR:
        assert _matches(segment, name) == _reference(atoms, name), (text, name)


@pytest.mark.parametrize("use_openat2", [True, False], ids=["openat2", "walk"])
def test_hostile_patterns_match_what_they_should_in_a_walk(
    root_dir: Path, use_openat2: bool
) -> None:
    for name in NAMES:
        (root_dir / name).write_text(name)
    with Root.open(root_dir, use_openat2=use_openat2) as root:
        found = root.glob_all(HOSTILE)
    expected = [
        sorted(name for name in NAMES if _reference(_atoms(pattern), name)) for pattern in HOSTILE
    ]
    assert found == expected


def _atoms(pattern: str) -> tuple[str, ...]:
    """The atoms of one of ``HOSTILE`` (no escapes; classes closed by the first ``]``)."""
    return tuple(re.findall(r"\[[^]]*\]|.", pattern))


# The whole walk against a reference: every path of a small random tree, matched by
# textbook recursion over segments (``**`` any number of directories, a trailing ``**``
# the directory itself, or every top-level entry), symlinks never entered, each pattern's
# top-most matches kept, in path order.
TREE_NAMES = ["a", "b", "ab", ".h"]
SEGMENT_ATOMS = ["a", "b", "h", ".", "*", "?", "[ab]", "[!a]"]


def _tree_paths(base: Path) -> dict[tuple[str, ...], bool]:
    """Every entry beneath ``base`` (symlinks not followed): is it a real directory?"""
    found: dict[tuple[str, ...], bool] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        rel = Path(dirpath).relative_to(base).parts
        for name in dirnames:
            found[(*rel, name)] = not (Path(dirpath) / name).is_symlink()
        for name in filenames:
            found[(*rel, name)] = False
    return found


def _path_matches(given: list[tuple[str, ...]], path: tuple[str, ...], is_dir: bool) -> bool:
    segments = [s for i, s in enumerate(given) if not (s == ("**",) and given[i - 1 : i] == [s])]
    if segments and segments[-1] == ("**",):
        head = segments[:-1]
        if not head:
            return len(path) == 1
        return is_dir and _path_matches(head, path, is_dir)

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(segments):
            return j == len(path)
        if segments[i] == ("**",):
            return any(match(i + 1, k) for k in range(j, len(path) + 1))
        return j < len(path) and _reference(segments[i], path[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _expected(
    alternatives: list[list[tuple[str, ...]]], paths: dict[tuple[str, ...], bool]
) -> list[str]:
    matched = {
        path
        for path, is_dir in paths.items()
        for segments in alternatives
        if _path_matches(segments, path, is_dir)
    }
    top_most = [p for p in matched if not any(p[:i] in matched for i in range(1, len(p)))]
    return ["/".join(p) for p in sorted(top_most)]


segment_atoms = st.one_of(
    st.just(("**",)),
    st.lists(st.sampled_from(SEGMENT_ATOMS), min_size=1, max_size=3)
    .map(tuple)
    .filter(lambda atoms: "".join(atoms) not in (".", "..", "**")),
)
alternatives = st.lists(st.lists(segment_atoms, min_size=1, max_size=4), min_size=1, max_size=3)
trees = st.lists(
    st.tuples(
        st.lists(st.sampled_from(TREE_NAMES), min_size=1, max_size=4).map(tuple),
        st.sampled_from(["file", "dir", "link"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(tree=trees, patterns=st.lists(alternatives, min_size=1, max_size=3))
def test_the_walk_agrees_with_a_reference(
    tmp_path_factory: pytest.TempPathFactory,
    tree: list[tuple[tuple[str, ...], str]],
    patterns: list[list[list[tuple[str, ...]]]],
) -> None:
    base = tmp_path_factory.mktemp("ref")
    for parts, kind in tree:
        path = base.joinpath(*parts)
        if any(p.is_symlink() or p.is_file() for p in [path, *path.parents] if p != base):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            continue
        if kind == "dir":
            path.mkdir()
        elif kind == "link":
            path.symlink_to(".")
        else:
            path.write_text("x")
    texts = []
    for alts in patterns:
        spelt = ["/".join("".join(segment) for segment in alt) for alt in alts]
        texts.append(spelt[0] if len(spelt) == 1 else "{" + ",".join(spelt) + "}")
    paths = _tree_paths(base)
    for use_openat2 in (True, False):
        with Root.open(base, use_openat2=use_openat2) as root:
            found = root.glob_all(texts)
        assert found == [_expected(alts, paths) for alts in patterns], texts
