"""Trees to delete: a broad one with every kind of entry, and trees too deep to name with
one path, built one directory descriptor at a time."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def deep_tree(top: Path, depth: int, name: str = "d", leaf: str = "leaf.txt") -> Iterator[str]:
    """``top/name/name/.../leaf`` with ``depth`` directories, as a relative path.

    Whatever is left of it is removed afterwards with ``rm -rf``: pytest's own clean-up
    (``shutil.rmtree``) recurses and fails on a tree this deep.
    """
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        yield "/".join([name] * depth + [leaf])
    finally:
        subprocess.run(["rm", "-rf", "--", str(top / name)], check=True)


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
