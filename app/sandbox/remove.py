"""Removing a directory tree through file descriptors, without recursion.

Unlike ``shutil.rmtree`` in Python 3.11 this never recurses (a tree 100 000 levels deep is
fine), never follows a symlink, never crosses a mount point, never opens a FIFO or device,
and keeps a bounded number of descriptors open: deep levels are closed and re-reached
through ``..``, checked against the device and inode we remembered on the way down.

A caller that must not hog the machine (the background purger) passes ``pace``: it is
called after every entry removed, and may sleep, or raise to stop the removal there.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from app.sandbox.errors import Busy, from_os_error
from app.sandbox.fd import (
    CLOSED,
    OPEN_LEVELS,
    DirOpener,
    IsSymlink,
    Missing,
    identity,
    reopen_parent,
)

Pace = Callable[[], None]


def no_pace() -> None:
    """Remove at full speed."""


@dataclass
class _Level:
    fd: int
    name: str
    identity: tuple[int, int]
    subdirs: list[str] | None = None


def remove_tree(
    opener: DirOpener, parent_fd: int, name: str, *, path: str = "", pace: Pace = no_pace
) -> None:
    """Remove directory ``name`` of ``parent_fd`` and everything in it, calling ``pace``
    after each entry removed.

    Raises ``IsSymlink``/``Missing`` if ``name`` is not a directory when we open it,
    ``OutsideRoot`` when a mount point lies inside, ``FilesystemError`` otherwise.
    """
    levels = [_open_level(opener, parent_fd, name, path)]
    try:
        while levels:
            level = levels[-1]
            if level.subdirs is None:
                level.subdirs = _unlink_files(level.fd, path, pace)
            if level.subdirs:
                child = level.subdirs.pop()
                try:
                    levels.append(_open_level(opener, level.fd, child, path))
                except Missing:
                    continue
                except IsSymlink:
                    _unlink(level.fd, child, path)
                    continue
                if len(levels) > OPEN_LEVELS:
                    shallow = levels[-OPEN_LEVELS - 1]
                    os.close(shallow.fd)
                    shallow.fd = CLOSED
                continue
            levels.pop()
            if levels:
                parent = levels[-1]
                if parent.fd == CLOSED:
                    parent.fd = reopen_parent(level.fd, parent.identity, path)
                container = parent.fd
            else:
                container = parent_fd
            os.close(level.fd)
            level.fd = CLOSED
            _rmdir(container, level.name, path)
            pace()
    finally:
        for level in levels:
            if level.fd != CLOSED:
                os.close(level.fd)


def _open_level(opener: DirOpener, dir_fd: int, name: str, path: str) -> _Level:
    fd = opener.open_dir(dir_fd, name, path=path)
    return _Level(fd, name, identity(fd))


def _unlink_files(fd: int, path: str, pace: Pace) -> list[str]:
    """Unlink every non-directory in ``fd``; return the names of its subdirectories."""
    subdirs: list[str] = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) or not _unlink(fd, entry.name, path):
                    subdirs.append(entry.name)
                else:
                    pace()
    except OSError as exc:
        raise from_os_error(exc, path, "list directory") from None
    return subdirs


def _unlink(dir_fd: int, name: str, path: str) -> bool:
    """Unlink ``name``; False when it turned out to be a directory (swapped in meanwhile)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        return False
    except OSError as exc:
        raise from_os_error(exc, path, "delete") from None
    return True


def _rmdir(dir_fd: int, name: str, path: str) -> None:
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise Busy("entries were added while the directory was being deleted", path) from None
        raise from_os_error(exc, path, "delete directory") from None
