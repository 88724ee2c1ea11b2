"""Lexical normalisation of root-relative paths: the only string handling of paths we do.

Normalising is about meaning, not safety: it turns ``./a//b/`` into ``a/b`` and rejects what
can never name an entry beneath the root. Safety comes from resolving the result with
directory file descriptors (see ``root.py``), which no string check can replace.

The size limits are Linux's own (``PATH_MAX``, ``NAME_MAX``) plus a bound on segments, so
that an entry the kernel would refuse anyway is refused before any work, with its own code.

Names are ``str`` as Python gives them (``os.fsdecode``): a byte that is not valid UTF-8
is a lone surrogate U+DC80..U+DCFF, which ``os.fsencode`` turns back into that byte (see
``names.printable`` for how such a name is shown).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence

from app.sandbox.errors import InvalidPath, NameTooLong, OutsideRoot, PathTooLong, TooManySegments

Parts = tuple[str, ...]

MAX_PATH_BYTES = 4096
"""Longest entry (path or pattern), in UTF-8 bytes: Linux's ``PATH_MAX``."""
MAX_SEGMENT_BYTES = 255
"""Longest segment, in UTF-8 bytes: Linux's ``NAME_MAX``."""
MAX_SEGMENTS = 256
"""Most segments in one entry, ``.`` and ``..`` included."""


def check_length(entry: str) -> None:
    """Raise ``PathTooLong`` when ``entry`` is longer than ``MAX_PATH_BYTES``."""
    size = _size(entry)
    if size > MAX_PATH_BYTES:
        raise PathTooLong(
            f"entry is {size} bytes long, more than the {MAX_PATH_BYTES} allowed",
            path=_abridged(entry),
        )


def split(path: str, *, limited: bool = True) -> Parts:
    """Split ``path`` into components, dropping ``.`` and empty ones and folding ``..``.

    Raises ``InvalidPath`` for an absolute path, a NUL byte or the root itself,
    ``OutsideRoot`` when ``..`` climbs above the root, ``NameTooLong`` for a segment
    past ``NAME_MAX`` and, when ``limited``, ``PathTooLong`` or ``TooManySegments`` past
    the limits above. Paths the sandbox found itself (glob matches in a deep tree) are
    split with ``limited=False``: the limits bound what callers send, not what exists.
    """
    return fold(segments(path, limited=limited), path)


def fold(found: Iterable[str], path: str) -> Parts:
    """``found`` segments of ``path`` with the empty ones and ``.`` dropped and each
    ``..`` taking away the one before; ``OutsideRoot`` when one climbs above the root,
    ``InvalidPath`` when nothing is left."""
    parts: list[str] = []
    for segment in found:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise OutsideRoot("path climbs out of the workspace", path=path)
            parts.pop()
        else:
            parts.append(segment)
    if not parts:
        raise InvalidPath("path names the workspace root itself, which cannot be deleted", path)
    return tuple(parts)


def check_count(found: Sequence[str], path: str) -> None:
    """Raise ``TooManySegments`` when ``path`` has more than ``MAX_SEGMENTS`` non-empty
    ``found`` segments."""
    count = sum(1 for segment in found if segment)
    if count > MAX_SEGMENTS:
        raise TooManySegments(
            f"path has {count} segments, more than the {MAX_SEGMENTS} allowed",
            path=_abridged(path),
        )


def segments(path: str, *, limited: bool = True) -> list[str]:
    """The non-empty segments of ``path``, ``.`` and ``..`` kept as they are; raises the
    errors of ``split`` but for climbing out and naming the root."""
    if limited:
        check_length(path)
    if "\x00" in path:
        raise InvalidPath("path contains a NUL byte", path=path.replace("\x00", "\\0"))
    if path.startswith("/"):
        raise InvalidPath("path must be relative to the workspace, not absolute", path=path)
    found = [segment for segment in path.split("/") if segment]
    if limited:
        check_count(found, path)
    for segment in found:
        if _size(segment) > MAX_SEGMENT_BYTES:
            raise NameTooLong(
                f"a segment is longer than {MAX_SEGMENT_BYTES} bytes",
                path=_abridged(segment),
                err=errno.ENAMETOOLONG,
            )
    return found


def join(parts: Parts) -> str:
    """The normalised, slash-separated form of ``parts``."""
    return "/".join(parts)


def _size(text: str) -> int:
    """Length in bytes, as the kernel will see it."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        # A lone surrogate that no name decodes to: measure it, do not crash on it.
        return len(text.encode("utf-8", "surrogatepass"))


def _abridged(text: str) -> str:
    """``text`` short enough to echo back in an error."""
    return text if len(text) <= 64 else text[:64] + "..."
