"""Snapshots of a directory tree: names, kinds, modes, sizes, contents and link targets.

Two snapshots are equal exactly when nothing in the tree was added, removed or changed.
Symlinks are recorded as links (never followed) and mount points are listed but not
entered. The walk goes through directory descriptors without recursion, so trees deeper
than PATH_MAX can be taken too. With ``mtimes=True`` every entry also records its
modification time (last in its tuple), for what must restore times exactly.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

Snapshot = dict[str, tuple[str, ...]]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Frame:
    fd: int
    rel: str
    subdirs: list[str] = field(default_factory=list)


def snapshot(top: Path, *, exclude: tuple[Path, ...] = (), mtimes: bool = False) -> Snapshot:
    """Every entry beneath ``top`` (``top`` itself as "."), except those under ``exclude``;
    with ``mtimes``, each with its modification time (in ns) last."""
    skipped = {os.path.relpath(path, top) for path in exclude}
    top_st = os.lstat(top)
    entries: Snapshot = {".": ("dir", oct(top_st.st_mode))}
    if mtimes:
        entries["."] += (str(top_st.st_mtime_ns),)
    frames = [_Frame(os.open(top, _DIR), ".")]
    try:
        frames[0].subdirs = _record_directory(frames[0], skipped, entries, mtimes)
        while frames:
            frame = frames[-1]
            if not frame.subdirs:
                os.close(frames.pop().fd)
                continue
            name = frame.subdirs.pop()
            child = _Frame(os.open(name, _DIR, dir_fd=frame.fd), _join(frame.rel, name))
            frames.append(child)
            child.subdirs = _record_directory(child, skipped, entries, mtimes)
    finally:
        for frame in frames:
            os.close(frame.fd)
    return entries


def _record_directory(
    frame: _Frame, skipped: set[str], entries: Snapshot, mtimes: bool
) -> list[str]:
    """Record every entry of ``frame``'s directory; return the subdirectories to enter."""
    subdirs = []
    for name in sorted(os.listdir(frame.fd)):
        rel = _join(frame.rel, name)
        if rel in skipped:
            continue
        st = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
        entry: tuple[str, ...]
        if stat.S_ISDIR(st.st_mode):
            entry = ("dir", oct(st.st_mode))
            if not _is_mount_point(frame.fd, name, st):
                subdirs.append(name)
        elif stat.S_ISLNK(st.st_mode):
            entry = ("link", os.readlink(name, dir_fd=frame.fd))
        elif stat.S_ISREG(st.st_mode):
            entry = ("file", oct(st.st_mode), str(st.st_size), _digest(frame.fd, name))
        else:
            entry = ("other", oct(st.st_mode), str(st.st_rdev))
        entries[rel] = (*entry, str(st.st_mtime_ns)) if mtimes else entry
    return subdirs


def _is_mount_point(dir_fd: int, name: str, st: os.stat_result) -> bool:
    # A bind mount of the same filesystem keeps st_dev: only the mount ids tell.
    if st.st_dev != os.stat(dir_fd).st_dev:
        return True
    child_fd = os.open(name, _DIR, dir_fd=dir_fd)
    try:
        return _mount_id(child_fd) != _mount_id(dir_fd)
    finally:
        os.close(child_fd)


def _mount_id(fd: int) -> str:
    with open(f"/proc/self/fdinfo/{fd}") as info:
        return next(line for line in info if line.startswith("mnt_id:"))


def _digest(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def _join(rel: str, name: str) -> str:
    return name if rel == "." else f"{rel}/{name}"


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    lines = [f"removed: {name}" for name in sorted(before.keys() - after.keys())]
    lines += [f"added: {name}" for name in sorted(after.keys() - before.keys())]
    lines += [
        f"changed: {name}: {before[name]} -> {after[name]}"
        for name in sorted(before.keys() & after.keys())
        if before[name] != after[name]
    ]
    return lines


# In an expected snapshot, an mtime that any value matches.
ANY_MTIME = "any"


def without(before: Snapshot, removed: list[str]) -> Snapshot:
    """``before`` (taken with ``mtimes``) once ``removed`` entries and all they held are
    gone: the mtimes of directories that lost a child may then be anything."""
    kept = {
        path: entry
        for path, entry in before.items()
        if not any(path == r or path.startswith(r + "/") for r in removed)
    }
    for r in removed:
        parent = r.rpartition("/")[0] or "."
        kept[parent] = (*kept[parent][:-1], ANY_MTIME)
    return kept


def matches(actual: Snapshot, expected: Snapshot) -> bool:
    """Equal (both taken with ``mtimes``), except where ``expected`` holds ``ANY_MTIME``."""
    if actual.keys() != expected.keys():
        return False
    return all(
        actual[path] == entry or (entry[-1] == ANY_MTIME and actual[path][:-1] == entry[:-1])
        for path, entry in expected.items()
    )
