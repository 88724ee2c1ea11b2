"""Test helpers for the real filesystem: snapshots, bind mounts, deep trees."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

Snapshot = dict[str, tuple[str, str]]


def snapshot(top: Path) -> Snapshot:
    """Every entry beneath ``top`` (itself included): its type and content or link target.

    Symlinks are recorded, never followed, so a snapshot says exactly what a delete may
    have changed.
    """
    entries: Snapshot = {}
    pending = [top]
    while pending:
        current = pending.pop()
        st = current.lstat()
        rel = current.relative_to(top).as_posix()
        if stat.S_ISLNK(st.st_mode):
            entries[rel] = ("symlink", os.readlink(current))
        elif stat.S_ISDIR(st.st_mode):
            entries[rel] = ("dir", "")
            pending.extend(current.iterdir())
        elif stat.S_ISREG(st.st_mode):
            entries[rel] = ("file", current.read_text(errors="surrogateescape"))
        else:
            entries[rel] = ("other", oct(stat.S_IFMT(st.st_mode)))
    return entries


@contextmanager
def bind_mount(source: Path, target: Path, *, read_only: bool = False) -> Iterator[None]:
    """Bind-mount ``source`` on ``target`` for the block; skip the test where not permitted."""
    mounted = subprocess.run(
        ["mount", "--bind", str(source), str(target)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"bind mounts are not permitted here: {mounted.stderr.strip()}")
    try:
        if read_only:
            remount(target, "ro")
        yield
    finally:
        subprocess.run(["umount", str(target)], capture_output=True, check=True)


def remount(target: Path, mode: str) -> None:
    """Make the bind mount at ``target`` read-only (``"ro"``) or writable (``"rw"``)."""
    subprocess.run(["mount", "-o", f"remount,bind,{mode}", str(target)], check=True)


def make_deep_tree(top: Path, depth: int) -> None:
    """Create ``top/d/d/.../d`` ``depth`` levels deep, with a file at the bottom.

    Built through directory descriptors: the full path is far longer than PATH_MAX.
    """
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.close(leaf)
    finally:
        os.close(fd)
