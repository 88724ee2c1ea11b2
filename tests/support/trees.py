"""Trees too deep to name with one path, built one directory descriptor at a time."""

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
