"""Snapshots of a directory tree: names, kinds, sizes, contents and link targets.

Two snapshots are equal exactly when nothing in the tree was added, removed or changed.
Symlinks are recorded as links (never followed) and mount points are not crossed, so a
snapshot of a tree that holds a symlink to ``/`` stays small and finite.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

Snapshot = dict[str, tuple[str, ...]]


def snapshot(top: Path, *, exclude: tuple[Path, ...] = ()) -> Snapshot:
    """Every entry beneath ``top`` (``top`` itself included), except those under ``exclude``."""
    skipped = {os.fspath(path) for path in exclude}
    top_dev = os.lstat(top).st_dev
    entries: Snapshot = {}
    pending = [os.fspath(top)]
    while pending:
        path = pending.pop()
        if path in skipped:
            continue
        st = os.lstat(path)
        rel = os.path.relpath(path, top)
        if stat.S_ISDIR(st.st_mode):
            entries[rel] = ("dir", oct(st.st_mode))
            if st.st_dev == top_dev and not os.path.ismount(path):
                pending.extend(os.path.join(path, name) for name in os.listdir(path))
        elif stat.S_ISLNK(st.st_mode):
            entries[rel] = ("link", os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            entries[rel] = ("file", oct(st.st_mode), str(st.st_size), digest)
        else:
            entries[rel] = ("other", oct(st.st_mode), str(st.st_rdev))
    return entries


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
