"""Glob patterns with doublestar semantics, matched by walking directory descriptors.

The syntax is that of Go's ``bmatcuk/doublestar`` (what Kargo uses): ``*`` any run of
characters within one segment (dot-files included), ``?`` one character, ``[abc]``,
``[a-z]``, ``[^x]``/``[!x]`` classes, ``{a,b}`` alternatives (nestable, may hold ``/``),
``**`` as a whole segment for zero or more directories, ``\\`` to escape.

A pattern is first normalised like a path: empty segments and plain ``.`` and ``..``
ones fold lexically (``tmp/../a.txt`` is ``a.txt``; climbing above the root is refused).
After that no segment matches ``.`` or ``..``, however it is spelt (``\\.\\.``, ``[.][.]``,
``.?``, ``{..,x}``): an alternative holding one matches nothing.

Matching costs time linear in the name, whatever the pattern: a segment is cut at its
stars into fixed-width chunks (literal characters, ``?``, classes), and each chunk is
looked for once, left to right, at its leftmost place (the classic wildcard algorithm,
which never backtracks: a star before a chunk absorbs whatever the leftmost place skips).

All the patterns of a step are matched in one walk: a directory is read once, whatever
number of patterns or brace alternatives look into it, and alternatives that end alike
share their states. A ``Budget`` bounds a request's walks, before anything is deleted.

A walk never follows a symlink (a matching symlink is returned, as a link), never crosses
a mount point and never enters a reserved name at the top of the root. Only each
pattern's top-most matches are returned: everything below a matched directory goes with it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

from app.sandbox.errors import (
    GlobTooBroad,
    InvalidPath,
    InvalidPattern,
    OutsideRoot,
    from_os_error,
)
from app.sandbox.fd import DirOpener, DirStack, IsSymlink, Level, Missing, identity, lstat_at
from app.sandbox.paths import Parts, check_count, check_length, fold, join, segments
from app.sandbox.reserved import ReservedNames

MAX_ALTERNATIVES = 256
"""Most alternatives one pattern's braces may expand to."""
MAX_STEP_ALTERNATIVES = 1024
"""Most alternatives all the patterns of one step may expand to, together."""


# A comparison of a name with a wildcard segment costs up to len(name) * width steps;
# it counts one unit more for every this many.
STEPS_PER_UNIT = 256


class Budget:
    """Work a request's glob walks may still do, in entries visited.

    Each entry a walk reads (or a literal it looks up) counts once, and once more for each
    distinct wildcard segment it is compared with (plus one for every ``STEPS_PER_UNIT``
    of its length times the segment's) and each pending ``**`` it is entered with; each
    match counts once for every segment of its path (it is resolved again to be deleted);
    each pattern alternative once. ``GlobTooBroad`` past the limit.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, units: int) -> None:
        """Count ``units`` of work; ``GlobTooBroad`` once more than ``limit`` is done."""
        self.left -= units
        if self.left < 0:
            raise GlobTooBroad(
                f"the glob patterns visit more than the {self.limit} entries a request may; "
                "narrow them (nothing was deleted)"
            )


class _Globstar:
    """The ``**`` segment."""


GLOBSTAR = _Globstar()


@dataclass(frozen=True)
class LiteralSegment:
    """A segment without wildcards: one name, looked up rather than listed for."""

    name: str


@dataclass(frozen=True)
class WildSegment:
    """A segment with wildcards, cut at its stars into fixed-width chunks.

    ``text`` (the segment as written) is its identity; the rest is derived from it.
    ``head`` must match at the start, ``tail`` at the end (None: the segment begins or
    ends with a star), ``middle`` are found in order in between; ``exact`` for a segment
    without stars.
    """

    text: str
    head: re.Pattern[str] | None = field(compare=False)
    head_width: int = field(compare=False)
    tail: re.Pattern[str] | None = field(compare=False)
    tail_width: int = field(compare=False)
    middle: tuple[re.Pattern[str], ...] = field(compare=False)
    width: int = field(compare=False)
    exact: bool = field(compare=False)

    def matches(self, name: str) -> bool:
        """Whether ``name`` matches, in O(len(name) * len(text)) at most."""
        size = len(name)
        if self.exact:
            assert self.head is not None
            return size == self.width and self.head.match(name) is not None
        if size < self.width:
            return False
        start, end = 0, size
        if self.head is not None:
            if self.head.match(name) is None:
                return False
            start = self.head_width
        if self.tail is not None:
            end = size - self.tail_width
            if self.tail.match(name, end) is None:
                return False
        for chunk in self.middle:
            found = chunk.search(name, start, end)
            if found is None:
                return False
            start = found.end()
        return True


Segment = _Globstar | LiteralSegment | WildSegment
END = -1
"""The node after a pattern's last segment: reaching it is a match."""


@dataclass(frozen=True)
class _Node:
    segment: Segment
    next: int


@dataclass
class Program:
    """The patterns of one step, compiled into one automaton.

    ``nodes[i]`` is a segment and the node after it; alternatives that end alike share
    their nodes. ``starts`` pairs each alternative's first node with its pattern's index.
    """

    nodes: list[_Node] = field(default_factory=list)
    starts: list[tuple[int, int]] = field(default_factory=list)
    _interned: dict[tuple[Segment, int], int] = field(default_factory=dict)

    def add(self, segments: Sequence[Segment], pattern: int) -> None:
        """Add one alternative of pattern number ``pattern``, sharing the nodes of any
        alternative added before that ends alike."""
        after = END
        for segment in reversed(segments):
            key = (segment, after)
            node = self._interned.get(key)
            if node is None:
                node = self._interned[key] = len(self.nodes)
                self.nodes.append(_Node(segment, after))
            after = node
        self.starts.append((after, pattern))


def compile_patterns(patterns: Sequence[str]) -> Program:
    """Parse ``patterns`` into one ``Program``.

    Raises ``InvalidPattern`` when one cannot be parsed or they expand to too many
    alternatives, and the path errors of ``paths.split`` when an alternative is
    absolute, names the root or climbs out.
    """
    program = Program()
    budget = MAX_STEP_ALTERNATIVES
    for index, pattern in enumerate(patterns):
        check_length(pattern)
        alternatives = _expand_braces(_normalised(pattern), min(MAX_ALTERNATIVES, budget))
        budget -= len(alternatives)
        for alternative in alternatives:
            compiled = _alternative(alternative, pattern)
            if compiled is not None:
                program.add(compiled, index)
    return program


def glob(
    opener: DirOpener,
    base_fd: int,
    patterns: Sequence[str],
    reserved: ReservedNames,
    budget: Budget | None,
) -> list[list[str]]:
    """The top-most entries beneath ``base_fd`` that each of ``patterns`` matches, sorted;
    ``reserved`` names at the top are left out. See ``Budget`` for ``budget``."""
    program = compile_patterns(patterns)
    if budget is not None:
        budget.spend(len(program.starts))
    found: list[list[Parts]] = [[] for _ in patterns]
    if program.starts:
        _Walk(opener, program, reserved, budget, found).run(base_fd)
    return [[join(parts) for parts in matches] for matches in found]


# Active states of a directory: node -> the patterns that reached it.
States = dict[int, frozenset[int]]


@dataclass
class _Frame(Level):
    """A directory of the walk: its active states, grouped by the kind of segment they
    wait for, and once read, its entries."""

    entries: list[tuple[str, bool]] | None = None
    at: int = 0
    literal: dict[str, list[tuple[int, frozenset[int]]]] = field(default_factory=dict)
    wild: dict[WildSegment, list[tuple[int, frozenset[int]]]] = field(default_factory=dict)
    globstar: list[tuple[int, frozenset[int]]] = field(default_factory=list)
    everything: frozenset[int] = frozenset()


class _Walk:
    """One depth-first walk for all the patterns of a step, entries in sorted order (so
    each pattern's matches come out sorted, each before anything beneath it)."""

    def __init__(
        self,
        opener: DirOpener,
        program: Program,
        reserved: ReservedNames,
        budget: Budget | None,
        found: list[list[Parts]],
    ) -> None:
        self.opener = opener
        self.nodes = program.nodes
        self.starts = program.starts
        self.reserved = reserved
        self.budget = budget
        self.found = found
        # The names of the directories below the base on the current branch.
        self.names: list[str] = []

    def run(self, base_fd: int) -> None:
        stack: DirStack[_Frame] = DirStack()
        fd = os.dup(base_fd)
        states: States = {}
        for node, pattern in self.starts:
            _add(states, node, frozenset((pattern,)))
        # The base itself is never a match: a pattern ending in ``**`` matches its entries.
        self._close(states)
        stack.push(self._frame(fd, states))
        try:
            while stack:
                frame = stack.top
                if frame.entries is None:
                    frame.entries = self._entries(frame, top=len(stack) == 1)
                if frame.at == len(frame.entries):
                    stack.pop(self._path)
                    if self.names:
                        self.names.pop()
                    continue
                name, is_dir = frame.entries[frame.at]
                frame.at += 1
                after = self._advance(name, frame, is_dir)
                if not is_dir or not after:
                    continue
                try:
                    fd = self.opener.open_dir(frame.fd, name, path=partial(self._path, name))
                except (IsSymlink, Missing, OutsideRoot):
                    continue
                stack.push(self._frame(fd, after))
                self.names.append(name)
        finally:
            stack.close()

    def _frame(self, fd: int, states: States) -> _Frame:
        frame = _Frame(fd, identity(fd))
        for node, patterns in states.items():
            segment, after = self.nodes[node].segment, self.nodes[node].next
            if isinstance(segment, LiteralSegment):
                frame.literal.setdefault(segment.name, []).append((node, patterns))
            elif isinstance(segment, WildSegment):
                frame.wild.setdefault(segment, []).append((node, patterns))
            elif after == END:
                frame.everything |= patterns
            else:
                frame.globstar.append((node, patterns))
        return frame

    def _advance(self, name: str, frame: _Frame, is_dir: bool) -> States:
        """Record what entry ``name`` of ``frame`` matches; return the states to enter it
        with (none for the patterns it matched: only top-most matches count)."""
        matched = set(frame.everything)
        after: States = {}
        moved = list(frame.literal.get(name, ()))
        if frame.wild:
            self._spend(sum(1 + len(name) * w.width // STEPS_PER_UNIT for w in frame.wild))
        for wild, members in frame.wild.items():
            if wild.matches(name):
                moved.extend(members)
        for node, patterns in moved:
            following = self.nodes[node].next
            if following == END:
                matched |= patterns
            else:
                _add(after, following, patterns)
        if is_dir:
            self._spend(len(frame.globstar))
            for node, patterns in frame.globstar:
                _add(after, node, patterns)
            # A pattern ending in ``**`` (``a/**``) matches the directory itself.
            matched |= self._close(after)
        if matched:
            parts = (*self.names, name)
            self._spend(len(parts) * len(matched))
            for pattern in matched:
                self.found[pattern].append(parts)
            after = {node: rest for node, p in after.items() if (rest := p - matched)}
        return after

    def _close(self, states: States) -> set[int]:
        """Add to ``states`` what follows each ``**`` (it may match no directory at all);
        return the patterns for which a ``**`` is the last segment."""
        ending: set[int] = set()
        for node, patterns in list(states.items()):
            if self.nodes[node].segment is GLOBSTAR:
                following = self.nodes[node].next
                if following == END:
                    ending |= patterns
                else:
                    _add(states, following, patterns)
        return ending

    def _entries(self, frame: _Frame, *, top: bool) -> list[tuple[str, bool]]:
        """The entries of ``frame`` its states need, sorted: every one if any state is not
        a literal, else just the literals that exist (one ``lstat`` each)."""
        if not (frame.wild or frame.globstar or frame.everything):
            # Only literal segments lead here, so the path is short (at most MAX_SEGMENTS).
            found = []
            for name in sorted(frame.literal):
                self._spend(1)
                st = lstat_at(frame.fd, name, self._path(name))
                if st is not None and not (top and self.reserved.holds(name, st)):
                    found.append((name, stat.S_ISDIR(st.st_mode)))
            return found
        listing = []
        try:
            with os.scandir(frame.fd) as entries:
                for entry in entries:
                    self._spend(1)
                    if not (top and self.reserved.spelled(entry.name)):
                        listing.append((entry.name, entry.is_dir(follow_symlinks=False)))
        except OSError as exc:
            raise from_os_error(exc, self._path(), "list directory") from None
        listing.sort()
        return listing

    def _spend(self, units: int) -> None:
        if self.budget is not None:
            self.budget.spend(units)

    def _path(self, name: str | None = None) -> str:
        """The current directory's path, or its entry ``name``'s, for messages."""
        return join((*self.names, name) if name is not None else tuple(self.names))


def _add(states: States, node: int, patterns: frozenset[int]) -> None:
    known = states.get(node)
    states[node] = patterns if known is None else known | patterns


def _normalised(pattern: str) -> str:
    """``pattern`` with its plain ``.``, ``..`` and empty segments folded lexically; the
    segments are those outside braces, which hold slashes of their own."""
    if pattern.startswith("/"):
        raise InvalidPath("path must be relative to the workspace, not absolute", path=pattern)
    found = _top_level_segments(pattern)
    check_count(found, pattern)
    return join(fold(found, pattern))


def _alternative(alternative: str, pattern: str) -> list[Segment] | None:
    """The segments of one brace alternative, or None when it holds a ``.`` or ``..``
    segment, which matches nothing (one that climbs above the root is refused)."""
    texts = segments(alternative)
    if not texts:
        raise InvalidPath("path names the workspace root itself, which cannot be deleted", pattern)
    depth = 0
    dotted = False
    compiled: list[Segment] = []
    for text in texts:
        if text in (".", ".."):
            dotted = True
            depth -= text == ".."
            if depth < 0:
                raise OutsideRoot("path climbs out of the workspace", path=pattern)
            continue
        depth += 1
        segment = parse_segment(text, pattern)
        if isinstance(segment, LiteralSegment) and segment.name in (".", ".."):
            dotted = True
        if not (segment is GLOBSTAR and compiled and compiled[-1] is GLOBSTAR):
            compiled.append(segment)
    return None if dotted else compiled


def parse_segment(text: str, pattern: str) -> Segment:
    """The segment ``text`` of ``pattern`` (named in errors): ``GLOBSTAR``, a literal name,
    or a ``WildSegment``; ``InvalidPattern`` when it cannot be parsed."""
    if text == "**":
        return GLOBSTAR
    chunks: list[list[str]] = [[]]
    literal: list[str] = []
    wild = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 == len(text):
                raise InvalidPattern(f"pattern {pattern!r} ends with a lone backslash", pattern)
            chunks[-1].append(re.escape(text[i + 1]))
            literal.append(text[i + 1])
            i += 2
        elif char == "*":
            wild = True
            chunks.append([])
            while i < len(text) and text[i] == "*":
                i += 1
        elif char == "?":
            wild = True
            chunks[-1].append(".")
            i += 1
        elif char == "[":
            wild = True
            cls, i = _char_class(text, i, pattern)
            chunks[-1].append(cls)
        else:
            chunks[-1].append(re.escape(char))
            literal.append(char)
            i += 1
    if not wild:
        return LiteralSegment("".join(literal))
    return _wild(text, chunks)


def _wild(text: str, chunks: list[list[str]]) -> WildSegment:
    """A ``WildSegment`` from the regexes of the fixed-width atoms between its stars."""
    compiled = [re.compile("".join(chunk), re.DOTALL) for chunk in chunks]
    widths = [len(chunk) for chunk in chunks]
    if len(chunks) == 1:
        return WildSegment(text, compiled[0], widths[0], None, 0, (), widths[0], exact=True)
    head = compiled[0] if widths[0] else None
    tail = compiled[-1] if widths[-1] else None
    middle = tuple(c for c, w in zip(compiled[1:-1], widths[1:-1], strict=True) if w)
    return WildSegment(text, head, widths[0], tail, widths[-1], middle, sum(widths), exact=False)


def _char_class(text: str, start: int, pattern: str) -> tuple[str, int]:
    """Translate the ``[...]`` class at ``text[start]``; return its regex and the next index."""
    i = start + 1
    negate = i < len(text) and text[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    while i < len(text) and text[i] != "]":
        low, i = _class_char(text, i, pattern)
        if i + 1 < len(text) and text[i] == "-" and text[i + 1] != "]":
            high, i = _class_char(text, i + 1, pattern)
            if low > high:
                raise InvalidPattern(f"pattern {pattern!r} has a reversed range", pattern)
            items.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            items.append(re.escape(low))
    if i >= len(text):
        raise InvalidPattern(f"pattern {pattern!r} has an unclosed '['", pattern)
    if not items:
        raise InvalidPattern(f"pattern {pattern!r} has an empty '[]'", pattern)
    return f"[{'^' if negate else ''}{''.join(items)}]", i + 1


def _class_char(text: str, i: int, pattern: str) -> tuple[str, int]:
    if text[i] == "\\":
        if i + 1 == len(text):
            raise InvalidPattern(f"pattern {pattern!r} ends with a lone backslash", pattern)
        return text[i + 1], i + 2
    return text[i], i + 1


def _expand_braces(pattern: str, limit: int) -> list[str]:
    """Expand ``{a,b}`` alternatives (nested, escaped and ``[...]``-aware), at most
    ``limit`` of them."""
    done: list[str] = []
    todo = [pattern]
    while todo:
        current = todo.pop()
        found = _first_brace(current, pattern)
        if found is None:
            done.append(current)
        else:
            open_at, close_at, commas = found
            bounds = [open_at, *commas, close_at]
            prefix, suffix = current[:open_at], current[close_at + 1 :]
            todo.extend(
                prefix + current[bounds[k] + 1 : bounds[k + 1]] + suffix
                for k in range(len(bounds) - 1)
            )
        if len(done) + len(todo) > limit:
            raise InvalidPattern(
                f"pattern {pattern!r} expands to more than {limit} alternatives"
                + ("" if limit == MAX_ALTERNATIVES else " (with the step's other patterns)"),
                pattern,
            )
    done.reverse()
    return done


def _structure(text: str) -> Iterator[tuple[int, str, int]]:
    """Each ``{``, ``}``, ``,`` and ``/`` of ``text`` outside escapes and ``[...]``
    classes: its index, itself, and the brace depth inside it (after a ``{``, before a
    ``}``). A ``}`` closing nothing is a literal and is left out."""
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            close = text.find("]", i + 2 if text[i + 1 : i + 2] in ("!", "^") else i + 1)
            i = len(text) if close < 0 else close + 1
            continue
        if char == "{":
            depth += 1
            yield i, char, depth
        elif char == "}" and depth > 0:
            yield i, char, depth
            depth -= 1
        elif char in ",/":
            yield i, char, depth
        i += 1


def _top_level_segments(pattern: str) -> list[str]:
    """``pattern`` split at the slashes outside braces (and classes and escapes)."""
    cuts = [i for i, char, depth in _structure(pattern) if char == "/" and depth == 0]
    bounds = [-1, *cuts, len(pattern)]
    return [pattern[bounds[k] + 1 : bounds[k + 1]] for k in range(len(bounds) - 1)]


def _first_brace(text: str, pattern: str) -> tuple[int, int, list[int]] | None:
    """Locate the first top-level ``{``, its matching ``}`` and the top-level commas."""
    open_at = -1
    commas: list[int] = []
    for i, char, depth in _structure(text):
        if char == "{" and depth == 1:
            open_at = i
        elif char == "}" and depth == 1:
            return open_at, i, commas
        elif char == "," and depth == 1:
            commas.append(i)
    if open_at >= 0:
        raise InvalidPattern(f"pattern {pattern!r} has an unclosed '{{'", pattern)
    return None
