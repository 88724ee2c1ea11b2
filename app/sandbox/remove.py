"""Removing a directory tree through file descriptors, without recursion.

Unlike ``shutil.rmtree`` in Python 3.11 this never recurses (a tree 100 000 levels deep is
fine), never follows a symlink, never crosses a mount point, never opens a FIFO or device,
and keeps a bounded number of descriptors open (``fd.DirStack``): the shallow levels of a
deep branch are closed and re-reached through ``..``, checked against the device and inode
remembered on the way down.

Concurrent changes end cleanly: an entry swapped for a directory, or a directory for
something else, is removed as whatever it is now; a tree moved away while being walked is
``Busy``.

A caller that must not hog the machine (the background purger) passes ``pace``: it is
called after every entry removed, and may sleep, or raise to stop the removal there.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from app.sandbox.errors import Busy, from_os_error
from app.sandbox.fd import DirOpener, DirStack, IsSymlink, Level, Missing, identity

Pace = Callable[[], None]


def no_pace() -> None:
    """Remove at full speed."""


@dataclass
class _Level(Level):
    name: str = ""
    subdirs: list[str] | None = None


def remove_tree(
    opener: DirOpener, parent_fd: int, name: str, *, path: str = "", pace: Pace = no_pace
) -> None:
    """Remove directory ``name`` of ``parent_fd`` and everything in it, calling ``pace``
    after each entry removed.

    Raises ``IsSymlink``/``Missing`` if ``name`` is not a directory when we open it, or is
    not one any more when we come to remove it emptied (it was swapped for something else:
    the caller looks again), ``OutsideRoot`` when a mount point lies inside,
    ``FilesystemError`` otherwise.
    """
    levels: DirStack[_Level] = DirStack()
    levels.push(_open_level(opener, parent_fd, name, path))
    try:
        while levels:
            level = levels.top
            if level.subdirs is None:
                level.subdirs = _unlink_files(level.fd, path, pace)
            if level.subdirs:
                child = level.subdirs.pop()
                try:
                    levels.push(_open_level(opener, level.fd, child, path))
                except (IsSymlink, Missing):
                    # Not a directory (any more): whatever it is now goes as it is.
                    if not _unlink(level.fd, child, path):
                        raise Busy("an entry kept changing while being deleted", path) from None
                continue
            levels.pop(path)
            container = levels.top.fd if levels else parent_fd
            if not _rmdir(container, level.name, path):
                if not levels:
                    raise Missing(level.name)
                if not _unlink(container, level.name, path):
                    raise Busy("an entry kept changing while being deleted", path)
            pace()
    finally:
        levels.close()


def _open_level(opener: DirOpener, dir_fd: int, name: str, path: str) -> _Level:
    fd = opener.open_dir(dir_fd, name, path=path)
    return _Level(fd, identity(fd), name)


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


def _rmdir(dir_fd: int, name: str, path: str) -> bool:
    """Remove the emptied directory ``name``. False when ``name`` is no longer a directory:
    ours was swapped with something else, which is now in its place."""
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise Busy("entries were added while the directory was being deleted", path) from None
        raise from_os_error(exc, path, "delete directory") from None
    return True
