"""Lexical normalisation of root-relative paths: the only string handling of paths we do.

Normalising is about meaning, not safety: it turns ``./a//b/`` into ``a/b`` and rejects what
can never name an entry beneath the root. Safety comes from resolving the result with
directory file descriptors (see ``root.py``), which no string check can replace.
"""

from __future__ import annotations

from app.sandbox.errors import InvalidPath, OutsideRoot

Parts = tuple[str, ...]


def split(path: str) -> Parts:
    """Split ``path`` into components, dropping ``.`` and empty ones and folding ``..``.

    Raises ``InvalidPath`` for an absolute path, a NUL byte or the root itself, and
    ``OutsideRoot`` when ``..`` climbs above the root.
    """
    if "\x00" in path:
        raise InvalidPath("path contains a NUL byte", path=path.replace("\x00", "\\0"))
    if path.startswith("/"):
        raise InvalidPath("path must be relative to the workspace, not absolute", path=path)
    parts: list[str] = []
    for segment in path.split("/"):
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


def join(parts: Parts) -> str:
    """The normalised, slash-separated form of ``parts``."""
    return "/".join(parts)
