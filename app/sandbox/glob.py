"""Glob patterns with doublestar semantics, matched by walking directory descriptors.

The syntax is that of Go's ``bmatcuk/doublestar`` (what Kargo uses): ``*`` any run of
characters within one segment (dot-files included), ``?`` one character, ``[abc]``,
``[a-z]``, ``[^x]``/``[!x]`` classes, ``{a,b}`` alternatives (nestable, may hold ``/``),
``**`` as a whole segment for zero or more directories, ``\\`` to escape.

A walk never follows a symlink (a matching symlink is returned, as a link), never crosses
a mount point and never enters a reserved name at the top of the root. Only top-most
matches are returned: everything below a matched directory goes with it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from app.sandbox.errors import InvalidPattern, OutsideRoot, from_os_error
from app.sandbox.fd import (
    CLOSED,
    OPEN_LEVELS,
    DirOpener,
    IsSymlink,
    Missing,
    identity,
    lstat_at,
    reopen_parent,
)
from app.sandbox.paths import Parts, check_length, join, split

MAX_ALTERNATIVES = 256


class _Globstar:
    """The ``**`` segment."""


GLOBSTAR = _Globstar()


@dataclass(frozen=True)
class _Literal:
    name: str


@dataclass(frozen=True)
class _Wild:
    regex: re.Pattern[str]

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None


Segment = _Globstar | _Literal | _Wild


def compile_pattern(pattern: str) -> list[tuple[Segment, ...]]:
    """Parse ``pattern`` into one segment list per brace alternative.

    Raises ``InvalidPattern`` when it cannot be parsed, and the path errors of
    ``paths.split`` when an alternative is absolute, names the root or climbs out.
    """
    check_length(pattern)
    compiled: list[tuple[Segment, ...]] = []
    for alternative in _expand_braces(pattern):
        segments: list[Segment] = []
        for text in split(alternative):
            segment = _segment(text, pattern)
            if segment is GLOBSTAR and segments and segments[-1] is GLOBSTAR:
                continue
            segments.append(segment)
        compiled.append(tuple(segments))
    return compiled


def glob(opener: DirOpener, base_fd: int, pattern: str, reserved: frozenset[str]) -> list[str]:
    """The top-most entries beneath ``base_fd`` that ``pattern`` matches, sorted."""
    matches: set[Parts] = set()
    for segments in compile_pattern(pattern):
        _Walk(opener, base_fd, segments, reserved, matches).run()
    kept: list[Parts] = []
    kept_set: set[Parts] = set()
    for parts in sorted(matches):
        if not any(parts[:i] in kept_set for i in range(1, len(parts))):
            kept.append(parts)
            kept_set.add(parts)
    return [join(parts) for parts in kept]


@dataclass
class _Frame:
    fd: int
    rel: Parts
    identity: tuple[int, int]
    pending: list[tuple[str, int]] = field(default_factory=list)
    listing: list[tuple[str, bool]] | None = None


class _Walk:
    """One depth-first walk for one brace alternative.

    Descriptors held: one per level, up to ``OPEN_LEVELS``; deeper, the shallow levels are
    closed and re-opened through ``..`` on the way back up.
    """

    def __init__(
        self,
        opener: DirOpener,
        base_fd: int,
        segments: tuple[Segment, ...],
        reserved: frozenset[str],
        matches: set[Parts],
    ) -> None:
        self.opener = opener
        self.base_fd = base_fd
        self.segments = segments
        self.reserved = reserved
        self.matches = matches
        self.visited: set[tuple[Parts, int]] = set()

    def run(self) -> None:
        fd = os.dup(self.base_fd)
        base = _Frame(fd, (), identity(fd))
        frames = [base]
        try:
            self._expand(base, 0)
            while frames:
                frame = frames[-1]
                if not frame.pending:
                    done = frames.pop()
                    if frames and frames[-1].fd == CLOSED:
                        parent = frames[-1]
                        parent.fd = reopen_parent(done.fd, parent.identity, join(parent.rel))
                    os.close(done.fd)
                    continue
                name, index = frame.pending.pop()
                rel = (*frame.rel, name)
                if self._below_match(rel):
                    continue
                try:
                    fd = self.opener.open_dir(frame.fd, name, path=join(rel))
                except (IsSymlink, Missing, OutsideRoot):
                    continue
                child = _Frame(fd, rel, identity(fd))
                frames.append(child)
                if len(frames) > OPEN_LEVELS:
                    shallow = frames[-OPEN_LEVELS - 1]
                    os.close(shallow.fd)
                    shallow.fd = CLOSED
                self._expand(child, index)
        finally:
            for frame in frames:
                if frame.fd != CLOSED:
                    os.close(frame.fd)

    def _expand(self, frame: _Frame, index: int) -> None:
        """Match segment ``index`` in ``frame``'s directory; queue the descents it needs."""
        if (frame.rel, index) in self.visited:
            return
        self.visited.add((frame.rel, index))
        segment = self.segments[index]
        last = index == len(self.segments) - 1
        if segment is GLOBSTAR:
            if last:
                if frame.rel:
                    self.matches.add(frame.rel)
                else:
                    self.matches.update((name,) for name, _ in self._listing(frame))
                return
            self._expand(frame, index + 1)
            frame.pending.extend((name, index) for name, is_dir in self._listing(frame) if is_dir)
            return
        for name, is_dir in self._candidates(frame, segment):
            if last:
                self.matches.add((*frame.rel, name))
            elif is_dir:
                frame.pending.append((name, index + 1))

    def _candidates(self, frame: _Frame, segment: Segment) -> list[tuple[str, bool]]:
        if isinstance(segment, _Literal):
            if not frame.rel and segment.name in self.reserved:
                return []
            st = lstat_at(frame.fd, segment.name, join((*frame.rel, segment.name)))
            if st is None:
                return []
            return [(segment.name, stat.S_ISDIR(st.st_mode))]
        assert isinstance(segment, _Wild)
        return [(name, is_dir) for name, is_dir in self._listing(frame) if segment.matches(name)]

    def _listing(self, frame: _Frame) -> list[tuple[str, bool]]:
        if frame.listing is None:
            try:
                with os.scandir(frame.fd) as entries:
                    frame.listing = [
                        (entry.name, entry.is_dir(follow_symlinks=False))
                        for entry in entries
                        if frame.rel or entry.name not in self.reserved
                    ]
            except OSError as exc:
                raise from_os_error(exc, join(frame.rel), "list directory") from None
            frame.listing.sort()
        return frame.listing

    def _below_match(self, rel: Parts) -> bool:
        return any(rel[:i] in self.matches for i in range(1, len(rel) + 1))


def _segment(text: str, pattern: str) -> Segment:
    if text == "**":
        return GLOBSTAR
    regex: list[str] = []
    literal: list[str] = []
    wild = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 == len(text):
                raise InvalidPattern(f"pattern {pattern!r} ends with a lone backslash", pattern)
            regex.append(re.escape(text[i + 1]))
            literal.append(text[i + 1])
            i += 2
        elif char == "*":
            wild = True
            regex.append(".*")
            while i < len(text) and text[i] == "*":
                i += 1
        elif char == "?":
            wild = True
            regex.append(".")
            i += 1
        elif char == "[":
            wild = True
            cls, i = _char_class(text, i, pattern)
            regex.append(cls)
        else:
            regex.append(re.escape(char))
            literal.append(char)
            i += 1
    if not wild:
        return _Literal("".join(literal))
    return _Wild(re.compile("".join(regex), re.DOTALL))


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


def _expand_braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives (nested, escaped and ``[...]``-aware)."""
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
        if len(done) + len(todo) > MAX_ALTERNATIVES:
            raise InvalidPattern(
                f"pattern {pattern!r} expands to more than {MAX_ALTERNATIVES} alternatives",
                pattern,
            )
    done.reverse()
    return done


def _first_brace(text: str, pattern: str) -> tuple[int, int, list[int]] | None:
    """Locate the first top-level ``{``, its matching ``}`` and the top-level commas."""
    depth = 0
    open_at = -1
    commas: list[int] = []
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
            if depth == 0:
                open_at = i
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                return open_at, i, commas
        elif char == "," and depth == 1:
            commas.append(i)
        i += 1
    if depth > 0:
        raise InvalidPattern(f"pattern {pattern!r} has an unclosed '{{'", pattern)
    return None
