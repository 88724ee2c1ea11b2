"""Trees to delete: a broad one with every kind of entry, and trees too deep to name with
one path (a chain, and one that forks at every level), built one directory descriptor at
a time."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


@contextmanager
def deep_tree(top: Path, depth: int, name: str = "d", leaf: str = "leaf.txt") -> Iterator[str]:
    """``top/name/name/.../leaf`` with ``depth`` directories, as a relative path.

    Whatever is left of it is removed afterwards with ``rm -rf``: pytest's own clean-up
    (``shutil.rmtree``) recurses and fails on a tree this deep.
    """
    try:
        yield chain(top, [name] * depth, leaf)
    finally:
        subprocess.run(["rm", "-rf", "--", str(top / name)], check=True)


def chain(base: Path, names: list[str], leaf: str) -> str:
    """The directories ``names`` one inside the other under ``base`` (those that exist are
    kept), and an empty file ``leaf`` in the last; returns the leaf's relative path."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            with suppress(FileExistsError):
                os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return "/".join([*names, leaf])


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


# The symlinks at the bottom of a branching tree, and how many levels each climbs at most.
LINKS = {"up": 2, "back": 1000}


@dataclass(frozen=True)
class BranchingTree:
    """A deep tree that forks at every level (see ``branching_tree``), as relative paths."""

    top: str
    depth: int
    leaves: list[str]
    # A path through each symlink of the deepest level to an ``f``, and that ``f``'s path.
    through_links: dict[str, str]

    def entries(self) -> list[str]:
        """Every entry of the tree, its top first."""
        found = []
        for level in range(1, self.depth + 1):
            here = "/".join([self.top, *["d"] * (level - 1)])
            found += [here, f"{here}/s", f"{here}/s/f"]
        bottom = found[-3]
        for name in ("b0", "b0/leaf", "b1", "b1/leaf", *LINKS):
            found.append(f"{bottom}/{name}")
        return found


def build_branching_tree(base: Path, depth: int, top: str = "deep") -> BranchingTree:
    """``base/top``: a chain of ``depth`` directories ``d`` that forks at every level.

    Each level also holds a directory ``s`` with a file ``f`` in it, so a walk climbs back
    and goes down again at every depth; the deepest level holds ``b0/leaf`` and
    ``b1/leaf``, and symlinks to the ``s`` of a level above: ``up`` two levels up, ``back``
    as far as a link can reach (1 000 levels). Built one descriptor at a time.
    """
    climbs = {link: min(depth - 1, most) for link, most in LINKS.items()}
    chain = [top, *["d"] * (depth - 1)]
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in chain:
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            _file_in(fd, "s", "f")
        for branch in ("b0", "b1"):
            _file_in(fd, branch, "leaf")
        for link, climb in climbs.items():
            os.symlink("../" * climb + "s", link, dir_fd=fd)
    finally:
        os.close(fd)
    bottom = "/".join(chain)
    through = {
        f"{bottom}/{link}/f": "/".join([*chain[: depth - climb], "s", "f"])
        for link, climb in climbs.items()
    }
    return BranchingTree(top, depth, [f"{bottom}/b0/leaf", f"{bottom}/b1/leaf"], through)


@contextmanager
def branching_tree(base: Path, depth: int, top: str = "deep") -> Iterator[BranchingTree]:
    """``build_branching_tree`` for the block; removed afterwards with ``rm -rf``."""
    try:
        yield build_branching_tree(base, depth, top)
    finally:
        subprocess.run(["rm", "-rf", "--", str(base / top)], check=True)


def _file_in(dir_fd: int, subdir: str, name: str) -> None:
    os.mkdir(subdir, dir_fd=dir_fd)
    fd = os.open(subdir, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    try:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
