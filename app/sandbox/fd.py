"""Opening directories beneath a root, one component at a time, without leaving it.

``DirOpener.open_dir`` is the single primitive every walk in the sandbox is built on: it
opens one child directory of an already-open directory, never following a symlink and
never crossing a mount point. With ``openat2`` the kernel enforces both; without it we use
``O_NOFOLLOW`` and compare the device and mount id of the result with the root's.

``DirStack`` is the other half of every walk: the directories along the current branch,
holding a bounded number of descriptors however deep the branch goes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from app.sandbox.errors import Busy, OutsideRoot, from_os_error
from app.sandbox.openat2 import (
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    openat2,
)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC
# Descriptors a walk keeps open along its current branch (see ``DirStack``).
OPEN_LEVELS = 64
CLOSED = -1
STRICT_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS

# The root-relative path to name in an error: a string, or a function making it, for a
# deep walk that must not spell out its path at every level (only when one fails).
Where: TypeAlias = str | Callable[[], str]


def spelt(where: Where) -> str:
    """The path ``where`` names."""
    return where if isinstance(where, str) else where()


class IsSymlink(Exception):
    """Signal: the component is a symbolic link (the caller decides what that means)."""


class Missing(Exception):
    """Signal: the component does not exist or is not a directory."""


def identity(fd: int) -> tuple[int, int]:
    """Device and inode of the file open at ``fd``."""
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def lstat_at(dir_fd: int, name: str, path: str) -> os.stat_result | None:
    """``name`` in the directory open at ``dir_fd``, not followed if it is a symlink; None
    when it does not exist (or its parent is no longer a directory).

    Any other failure raises the ``SandboxError`` for ``path``.
    """
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise from_os_error(exc, path, "inspect") from None


def reopen_parent(child_fd: int, parent: tuple[int, int], path: Where) -> int:
    """Open the parent of the directory at ``child_fd`` through ``..``.

    Raises ``Busy`` unless it is still the directory ``parent`` (device, inode) names: the
    tree was moved while we walked it.
    """
    try:
        fd = os.open("..", DIR_FLAGS, dir_fd=child_fd)
    except OSError as exc:
        raise from_os_error(exc, spelt(path), "climb back up") from None
    if identity(fd) != parent:
        os.close(fd)
        raise Busy("the tree was moved while it was being walked", spelt(path))
    return fd


def mount_id(fd: int) -> int | None:
    """The kernel's mount id of the file open at ``fd``, or None where /proc is unavailable."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
            for line in info:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class DirOpener:
    """Opens child directories on the same mount as the root they were created for."""

    def __init__(self, root_fd: int, *, use_openat2: bool) -> None:
        st = os.fstat(root_fd)
        self.use_openat2 = use_openat2
        self.root_dev = st.st_dev
        self.root_mount_id = mount_id(root_fd)

    def open_dir(self, dir_fd: int, name: str, *, path: Where = "") -> int:
        """Open directory ``name`` in ``dir_fd``.

        Raises ``IsSymlink`` for a symlink, ``Missing`` when absent or not a directory,
        ``OutsideRoot`` for a mount point or ``..``, ``FilesystemError`` for anything else.
        """
        if name == "..":
            # openat2 refuses it (RESOLVE_BENEATH); O_NOFOLLOW alone would climb out. Glob
            # patterns reach here with ``\.\.``, which lexical folding cannot see.
            raise OutsideRoot("'..' leads out of the directory", path=spelt(path))
        try:
            if self.use_openat2:
                return openat2(dir_fd, name, DIR_FLAGS, STRICT_RESOLVE)
            fd = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise OutsideRoot("a mount point is in the way", path=spelt(path)) from None
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                if self._is_symlink(dir_fd, name, spelt(path)):
                    raise IsSymlink(name) from None
                raise Missing(name) from None
            if exc.errno == errno.ENOENT:
                raise Missing(name) from None
            raise from_os_error(exc, spelt(path), "open directory") from None
        if not self.on_root_mount(fd):
            os.close(fd)
            raise OutsideRoot("a mount point is in the way", path=spelt(path))
        return fd

    def on_root_mount(self, fd: int) -> bool:
        """Whether the file open at ``fd`` lies on the root's own mount."""
        if os.fstat(fd).st_dev != self.root_dev:
            return False
        # Bind mounts of the same filesystem share st_dev; only the mount id tells them apart.
        return self.root_mount_id is None or mount_id(fd) == self.root_mount_id

    @staticmethod
    def _is_symlink(dir_fd: int, name: str, path: str) -> bool:
        st = lstat_at(dir_fd, name, path)
        return st is not None and stat.S_ISLNK(st.st_mode)


@dataclass
class Level:
    """A directory on a walk's branch: its descriptor (``CLOSED`` while far above the
    deepest level) and its device and inode, to check it when it is re-opened."""

    fd: int
    identity: tuple[int, int]


L = TypeVar("L", bound=Level)


class DirStack(Generic[L]):
    """The directories along one branch of a walk, top-most first, each opened in the one
    before it; ``close`` closes whatever is still open.

    At most ``OPEN_LEVELS`` descriptors are held, so depth costs none: pushing past them
    closes the level that many above, and popping re-opens the new deepest level through
    ``..`` of the one popped, checked against the identity seen on the way down. The open
    levels are always the deepest ones, contiguous: a level is closed at most once, and
    re-opened only once every level below it is gone.
    """

    def __init__(self) -> None:
        self._levels: list[L] = []

    def __len__(self) -> int:
        return len(self._levels)

    def __iter__(self) -> Iterator[L]:
        return iter(self._levels)

    @property
    def top(self) -> L:
        """The deepest level; it is always open."""
        return self._levels[-1]

    def push(self, level: L) -> None:
        """Add ``level`` (open) below the deepest one."""
        self._levels.append(level)
        if len(self._levels) > OPEN_LEVELS:
            far = self._levels[-OPEN_LEVELS - 1]
            if far.fd != CLOSED:
                os.close(far.fd)
                far.fd = CLOSED

    def pop(self, path: Where) -> L:
        """Remove the deepest level and close it; the one above is open again.

        Raises ``Busy`` when that one is not where it was (the tree was moved meanwhile),
        ``FilesystemError`` when it cannot be re-opened; ``path`` names the walk in errors.
        """
        done = self._levels.pop()
        try:
            if self._levels and self._levels[-1].fd == CLOSED:
                parent = self._levels[-1]
                parent.fd = reopen_parent(done.fd, parent.identity, path)
        finally:
            os.close(done.fd)
            done.fd = CLOSED
        return done

    def take(self) -> int:
        """Remove the deepest level and hand its descriptor over to the caller."""
        level = self._levels.pop()
        fd, level.fd = level.fd, CLOSED
        return fd

    def close(self) -> None:
        """Close every descriptor still open."""
        for level in self._levels:
            if level.fd != CLOSED:
                os.close(level.fd)
                level.fd = CLOSED
