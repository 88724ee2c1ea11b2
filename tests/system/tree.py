"""Workspace trees to delete, and snapshots that tell whether one changed at all."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

# What a snapshot records per entry: kind, mode, mtime and contents (or link target).
Snapshot = dict[str, tuple[str, int, int, str]]


def build_tree(base: Path, dirs: int, subdirs: int, files: int) -> list[str]:
    """``dirs`` top directories, each ``subdirs`` deep-ish directories of ``files`` files,
    plus a file, a symlink and an odd mode per top directory; returns the top names."""
    base.mkdir(parents=True)
    names = []
    for d in range(dirs):
        top = base / f"d{d:03}"
        for s in range(subdirs):
            leaf = top / f"s{s}" / "deeper"
            leaf.mkdir(parents=True)
            for f in range(files):
                (leaf / f"f{f}.txt").write_text(f"{d}/{s}/{f}\n" * (f + 1))
        (base / f"file{d:03}.yaml").write_text(f"file {d}\n")
        (base / f"link{d:03}").symlink_to(f"d{d:03}/s0")
        (top / "ro.txt").write_text("read only\n")
        (top / "ro.txt").chmod(0o444)
        os.utime(top, ns=(1_000_000_000 * d, 1_000_000_000 * d))
        names.append(f"d{d:03}")
    os.utime(base, ns=(1_000_000_000, 1_000_000_000))
    return names


def snapshot(base: Path) -> Snapshot:
    """Every entry beneath ``base`` (and ``base`` itself as ``.``), never following links."""
    result: Snapshot = {".": _describe(base)}
    for current, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = Path(current) / name
            result[str(path.relative_to(base))] = _describe(path)
    return result


def without(before: Snapshot, removed: list[str]) -> Snapshot:
    """``before`` with ``removed`` entries and all they held gone; the mtimes of
    directories that lost a child are left out of the comparison (set to -1)."""
    kept = {
        path: entry
        for path, entry in before.items()
        if not any(path == r or path.startswith(r + "/") for r in removed)
    }
    for r in removed:
        parent = r.rpartition("/")[0] or "."
        kind, mode, _, data = kept[parent]
        kept[parent] = (kind, mode, -1, data)
    return kept


def matches(actual: Snapshot, expected: Snapshot) -> bool:
    """Equal, except where ``expected`` holds a -1 mtime (any value will do)."""
    if actual.keys() != expected.keys():
        return False
    for path, entry in expected.items():
        if entry[2] == -1:
            entry = (entry[0], entry[1], actual[path][2], entry[3])
        if actual[path] != entry:
            return False
    return True


def _describe(path: Path) -> tuple[str, int, int, str]:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return ("link", st.st_mode, st.st_mtime_ns, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", st.st_mode, st.st_mtime_ns, "")
    return ("file", st.st_mode, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())


def trash_emptied(root: Path, timeout: float = 60) -> bool:
    """Whether the background purger empties ``root``'s trash within ``timeout`` seconds."""
    trash = root / ".stepd" / "trash"
    deadline = time.monotonic() + timeout
    while os.listdir(trash):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
