"""``Root``: a directory opened once, and every operation resolved beneath it.

This is to Python what Go's ``os.Root`` is to Go. Paths are normalised lexically, then
resolved through directory file descriptors: ``openat2(RESOLVE_BENEATH | RESOLVE_NO_XDEV)``
in one call when nothing on the way is a symlink, otherwise one component at a time with
``O_NOFOLLOW``, following each symlink ourselves and refusing any that leads out. A symlink
swapped in during a request therefore cannot redirect it, and the leaf is never followed:
removing a symlink removes the link.

Entries can also be moved out of the tree into another ``Root`` (``move_out``) and back
(``move_in``), by rename: the entry itself (inode, contents, mode, timestamps, a symlink as
a link) is untouched, which is what undoable deletes are built on.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from app.sandbox import glob as _glob
from app.sandbox.errors import (
    Busy,
    InvalidPath,
    OutsideRoot,
    SandboxError,
    SymlinkLoop,
    from_os_error,
)
from app.sandbox.fd import (
    DIR_FLAGS,
    STRICT_RESOLVE,
    DirOpener,
    DirStack,
    IsSymlink,
    Level,
    Missing,
    identity,
    lstat_at,
)
from app.sandbox.glob import Budget
from app.sandbox.names import printable
from app.sandbox.openat2 import openat2, probe
from app.sandbox.paths import Parts, join, split
from app.sandbox.remove import Pace, no_pace, remove_tree
from app.sandbox.rename import rename_noreplace
from app.sandbox.reserved import ReservedNames
from app.sandbox.statx import mount_of

# As Linux's own limit on symlinks followed during one lookup.
MAX_SYMLINKS = 40


class EntryKind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


@dataclass(frozen=True)
class Entry:
    """An entry found beneath a root.

    ``path`` is the normalised path it was asked for; ``identity`` (device and inode of
    its real parent directory, and its name) tells two spellings of one entry apart.
    ``real_path`` spells it through real directories only (symlinks on the way resolved),
    and ``parent_times`` are its parent's (atime, mtime) in ns when it was looked up.
    ``size`` is its own size in bytes, None for a directory (only a walk would tell).
    """

    path: str
    kind: EntryKind
    identity: tuple[int, int, str]
    real_path: str
    parent_times: tuple[int, int]
    size: int | None = None


class Root:
    """A directory every operation stays beneath. Close it (or use ``with``) when done."""

    def __init__(self, fd: int, *, reserved: frozenset[str], use_openat2: bool) -> None:
        self._fd = fd
        self._reserved = ReservedNames(fd, reserved)
        self._opener = DirOpener(fd, use_openat2=use_openat2)
        self._identity: tuple[int, int] | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        reserved: frozenset[str] = frozenset(),
        use_openat2: bool | None = None,
    ) -> Root:
        """Open the directory at ``path``; ``reserved`` top-level names stay unreachable,
        however the filesystem lets them be spelt (see ``reserved.py``).

        ``use_openat2=None`` uses ``openat2`` when the kernel allows it.
        """
        fd = os.open(path, DIR_FLAGS)
        try:
            available = probe(fd) if use_openat2 is None else use_openat2
            return cls(fd, reserved=reserved, use_openat2=available)
        except BaseException:
            os.close(fd)
            raise

    @property
    def fd(self) -> int:
        """The directory descriptor (borrowed: do not close it)."""
        return self._fd

    @property
    def identity(self) -> tuple[int, int]:
        """Device and inode of the directory: read once, since an open descriptor's never
        change (``same_entry`` compares them at every check of stepd's own area)."""
        if self._identity is None:
            self._identity = identity(self._fd)
        return self._identity

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open_subdir(self, name: str, *, create: bool = False) -> Root | None:
        """The child directory ``name`` as a root of its own, or None when absent.

        The child must be a real directory on the same mount: a symlink or a mount point
        is refused with ``OutsideRoot``. ``create`` makes it first (mode 0700) if missing.
        """
        if "/" in name or name in ("", ".", "..") or self._reserved.spelled(name):
            raise InvalidPath(f"{name!r} is not a valid workspace name", path=name)
        if create:
            _mkdir(self._fd, name)
        self._refuse_top(name, name)
        try:
            fd = self._opener.open_dir(self._fd, name, path=name)
        except IsSymlink:
            raise OutsideRoot("the workspace is a symbolic link", path=name) from None
        except Missing:
            return None
        return Root(fd, reserved=frozenset(), use_openat2=self._opener.use_openat2)

    def open_private(self, name: str, *, create: bool = True) -> Root | None:
        """The reserved top-level directory ``name``; None when it is absent and not
        ``create``d (mode 0700).

        This is the only way into a reserved name. Like a workspace, it must be a real
        directory on the root's own mount: a symlink, a mount point or anything else in its
        place is refused with ``OutsideRoot``.
        """
        if not self._reserved.spelled(name):
            raise InvalidPath(f"{name!r} is not a reserved name", path=name)
        if create:
            _mkdir(self._fd, name)
        try:
            fd = self._opener.open_dir(self._fd, name, path=name)
        except IsSymlink:
            raise OutsideRoot(f"{name!r} is a symbolic link", path=name) from None
        except Missing:
            if lstat_at(self._fd, name, name) is None:
                return None
            raise OutsideRoot(f"{name!r} is not a directory", path=name) from None
        return Root(fd, reserved=frozenset(), use_openat2=self._opener.use_openat2)

    def open_file(self, name: str, flags: int, mode: int = 0o600) -> int:
        """Open the regular file ``name`` of the root directory itself; the descriptor is
        the caller's to close.

        ``flags`` as for ``os.open`` (``O_CREAT`` makes it, with ``mode``). A symlink is never
        followed, and a symlink, a mount point (a bind-mounted file) or anything but a
        regular file there is refused with ``OutsideRoot``. Absent and not created:
        ``FileNotFoundError``'s ``SandboxError``.
        """
        if "/" in name or name in ("", ".", "..") or self._reserved.spelled(name):
            raise InvalidPath(f"{name!r} is not a file name of this directory", path=name)
        try:
            # O_NONBLOCK: a FIFO planted there must not block the open.
            fd = os.open(
                name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=self._fd
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutsideRoot(f"{name!r} is a symbolic link", path=name) from None
            raise from_os_error(exc, name, "open") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutsideRoot(f"{name!r} is not a regular file", path=name)
            if not self._opener.on_root_mount(fd):
                raise OutsideRoot(f"{name!r} is a mount point", path=name)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def same_entry(self, name: str, other: Root) -> bool:
        """Whether ``name`` in the root directory itself is, right now, the directory open
        as ``other`` (same device and inode; a symlink there is never followed)."""
        st = lstat_at(self._fd, name, name)
        return st is not None and other.identity == (st.st_dev, st.st_ino)

    def names(self) -> list[str]:
        """The names in the root directory itself, sorted (reserved ones left out)."""
        try:
            return sorted(name for name in os.listdir(self._fd) if not self._reserved.spelled(name))
        except OSError as exc:
            raise from_os_error(exc, "", "list directory") from None

    def sync(self) -> None:
        """Flush the root directory itself (its entries' names) to stable storage."""
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise from_os_error(exc, "", "sync directory") from None

    def move_out(self, real_path: str, dest: Root, name: str) -> bool:
        """Rename the entry at ``real_path`` to ``name`` in ``dest``; False if it is absent.

        ``real_path`` is an ``Entry.real_path``: it is resolved without following any
        symlink (one found on the way now means a concurrent change: ``Busy``), and the leaf
        is moved as it is. ``CrossDevice`` when ``dest`` is on another filesystem; a
        ``FilesystemError`` with errno ENOENT and no path when ``dest`` was removed.
        """
        parts = split(real_path, limited=False)
        located = self._open_parent(parts, follow=False)
        if located is None:
            return False
        parent_fd, real_parent = located
        try:
            leaf = self._leaf(parts, real_parent, parent_fd)
            os.rename(leaf, name, src_dir_fd=parent_fd, dst_dir_fd=dest.fd)
        except (FileNotFoundError, NotADirectoryError) as exc:
            if lstat_at(parent_fd, leaf, real_path) is None:
                return False
            # The entry is there: it is ``dest`` that was removed meanwhile.
            raise from_os_error(exc, "", "move into a directory that is gone") from None
        except OSError as exc:
            raise from_os_error(exc, real_path, "move") from None
        finally:
            os.close(parent_fd)
        return True

    def move_in(self, src: Root, name: str, real_path: str, parent_times: tuple[int, int]) -> bool:
        """Put ``name`` of ``src`` back at ``real_path`` and reset its parent's times.

        The reverse of ``move_out``. Never replaces anything: False when the parent no
        longer exists (or is no longer reachable without symlinks) or the name is taken.
        """
        parts = split(real_path, limited=False)
        try:
            located = self._open_parent(parts, follow=False)
        except Busy:
            return False
        if located is None:
            return False
        parent_fd, real_parent = located
        try:
            leaf = self._leaf(parts, real_parent, parent_fd)
            rename_noreplace(src.fd, name, parent_fd, leaf)
            os.utime(parent_fd, ns=parent_times)
        except (FileExistsError, FileNotFoundError):
            return False
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                return False
            raise from_os_error(exc, real_path, "move back") from None
        finally:
            os.close(parent_fd)
        return True

    def lookup(self, path: str, *, limited: bool = True) -> Entry | None:
        """The entry at ``path``, or None when it (or a parent) does not exist.

        The entry is checked not to be a mount point and, for a directory, to hold none, so
        that removing it later can succeed whole. Raises ``SandboxError`` for anything that
        must not be touched. ``limited=False`` skips the size limits of ``paths.split``
        (for glob matches).
        """
        parts = split(path, limited=limited)
        located = self._open_parent(parts)
        if located is None:
            return None
        parent_fd, real_parent = located
        try:
            leaf = self._leaf(parts, real_parent)
            st = lstat_at(parent_fd, leaf, path)
            if st is None:
                return None
            self._refuse_reserved(real_parent, leaf, st, path)
            kind = _kind(st.st_mode)
            self._check_mounts(parent_fd, leaf, path)
            parent = os.fstat(parent_fd)
            return Entry(
                join(parts),
                kind,
                (parent.st_dev, parent.st_ino, leaf),
                join((*real_parent, leaf)),
                (parent.st_atime_ns, parent.st_mtime_ns),
                None if kind is EntryKind.DIRECTORY else st.st_size,
            )
        finally:
            os.close(parent_fd)

    def remove(self, path: str, *, limited: bool = True, pace: Pace = no_pace) -> bool:
        """Remove the entry at ``path`` (a directory with all it holds, a symlink as a link).

        Returns False when there was nothing to remove. An entry that is, or holds, a mount
        point is refused with ``OutsideRoot`` before anything is removed. ``limited`` as
        for ``lookup``; ``pace`` is called after each entry of a directory tree is removed
        (see ``remove_tree``).
        """
        parts = split(path, limited=limited)
        located = self._open_parent(parts)
        if located is None:
            return False
        parent_fd, real_parent = located
        try:
            leaf = self._leaf(parts, real_parent)
            return self._remove_leaf(parent_fd, leaf, real_parent, path, pace)
        finally:
            os.close(parent_fd)

    def glob(self, pattern: str) -> list[str]:
        """Top-most entries matching the doublestar ``pattern`` (see ``glob.py``), sorted."""
        return self.glob_all([pattern])[0]

    def glob_all(self, patterns: Sequence[str], budget: Budget | None = None) -> list[list[str]]:
        """The top-most matches of each of ``patterns``, found in one walk of the tree.

        ``budget`` bounds the walk's work (``GlobTooBroad`` past it); None: unbounded.
        """
        return _glob.glob(self._opener, self._fd, patterns, self._reserved, budget)

    def _leaf(self, parts: Parts, real_parent: Parts, parent_fd: int | None = None) -> str:
        """``parts[-1]``, refused if it is reserved: by its spelling, and given its parent
        ``parent_fd``, by what it is (see ``reserved.py``)."""
        leaf = parts[-1]
        if not real_parent and self._reserved.spelled(leaf):
            raise InvalidPath(f"{leaf!r} is reserved", path=join(parts))
        if parent_fd is not None and not real_parent and self._reserved.names:
            path = join(parts)
            self._refuse_reserved(real_parent, leaf, lstat_at(parent_fd, leaf, path), path)
        return leaf

    def _refuse_top(self, name: str, path: str) -> None:
        """``InvalidPath`` when the top-level ``name`` is reserved (checked before opening
        it: one ``lstat`` in a root that reserves names)."""
        if self._reserved.spelled(name):
            raise InvalidPath(f"{name!r} is reserved", path=path)
        if self._reserved.names:
            self._refuse_reserved((), name, lstat_at(self._fd, name, path), path)

    def _refuse_reserved(
        self, real_parent: Parts, leaf: str, st: os.stat_result | None, path: str
    ) -> None:
        """``InvalidPath`` when ``leaf`` (``st``: its lstat) is a reserved directory."""
        if not real_parent and self._reserved.holds(leaf, st):
            raise InvalidPath(f"'{printable(leaf)}' is reserved", path=path)

    def _remove_leaf(
        self, parent_fd: int, leaf: str, real_parent: Parts, path: str, pace: Pace
    ) -> bool:
        # Each pass re-inspects the leaf: it may be swapped (file <-> directory <-> symlink)
        # between our stat and our unlink; three passes bound a hostile flip-flop.
        for _ in range(3):
            st = lstat_at(parent_fd, leaf, path)
            if st is None:
                return False
            self._refuse_reserved(real_parent, leaf, st, path)
            self._check_mounts(parent_fd, leaf, path)
            try:
                if stat.S_ISDIR(st.st_mode):
                    remove_tree(self._opener, parent_fd, leaf, path=path, pace=pace)
                else:
                    os.unlink(leaf, dir_fd=parent_fd)
                return True
            except FileNotFoundError:
                return False
            except (IsADirectoryError, IsSymlink, Missing):
                continue
            except OSError as exc:
                raise from_os_error(exc, path, "delete") from None
        raise Busy("the entry kept changing while being deleted", path)

    def _check_mounts(self, parent_fd: int, leaf: str, path: str) -> None:
        """Refuse an entry that is a mount point (a bind-mounted file too) or holds one.

        Anything but a directory is judged by its mount id from one ``statx``: the name
        is resolved in ``parent_fd`` (on the root's mount) as ``open`` would resolve it,
        a mount on it crossed, so a mount point shows the id of the mount on top of it.
        A directory (whose inside matters too), or a kernel without ``statx``'s mount
        id, takes the long way: ``O_PATH`` opens without following a symlink or really
        opening a FIFO or device, and its mount id is read from ``/proc``.
        """
        try:
            quick = mount_of(parent_fd, leaf) if self._opener.root_mount_id is not None else None
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise from_os_error(exc, path, "inspect") from None
        if quick is not None and not stat.S_ISDIR(quick[0]):
            if quick[1] != self._opener.root_mount_id:
                raise OutsideRoot("a mount point is in the way", path=path)
            return
        try:
            fd = os.open(leaf, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise from_os_error(exc, path, "inspect") from None
        try:
            if not self._opener.on_root_mount(fd):
                raise OutsideRoot("a mount point is in the way", path=path)
            if stat.S_ISDIR(os.fstat(fd).st_mode) and _holds_mount(fd):
                raise OutsideRoot("a mount point lies inside this directory", path=path)
        finally:
            os.close(fd)

    def _open_parent(self, parts: Parts, *, follow: bool = True) -> tuple[int, Parts] | None:
        """Open the directory holding ``parts[-1]``; return it and its real path, or None.

        With ``follow=False`` a symlink on the way is ``Busy`` instead of being followed.
        """
        dirs = parts[:-1]
        if not dirs:
            return os.dup(self._fd), ()
        if self._opener.use_openat2:
            # The walk checks each top-level directory before it opens it; openat2 opens
            # the first one unseen, so it is checked here.
            self._refuse_top(dirs[0], join(parts))
            try:
                return openat2(self._fd, join(dirs), DIR_FLAGS, STRICT_RESOLVE), dirs
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    return None
                if exc.errno == errno.EXDEV:
                    raise OutsideRoot("a mount point is in the way", path=join(parts)) from None
                if exc.errno not in (errno.ELOOP, errno.ENAMETOOLONG):
                    raise from_os_error(exc, join(parts), "open") from None
                # A symlink on the way, or more than PATH_MAX bytes of valid names: walk
                # one component at a time (the walk still refuses a name too long itself).
        return self._walk(dirs, join(parts), follow)

    def _walk(self, dirs: Parts, path: str, follow: bool) -> tuple[int, Parts] | None:
        pending = list(reversed(dirs))
        stack: DirStack[_Step] = DirStack()
        links = 0
        try:
            while pending:
                name = pending.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if not stack:
                        raise OutsideRoot("a symbolic link leads out of the workspace", path)
                    stack.pop(path)
                    continue
                if not stack:
                    self._refuse_top(name, path)
                current = stack.top.fd if stack else self._fd
                try:
                    fd = self._opener.open_dir(current, name, path=path)
                    stack.push(_Step(fd, identity(fd), name))
                except Missing:
                    return None
                except IsSymlink:
                    if not follow:
                        raise Busy("a path component became a symbolic link", path) from None
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise SymlinkLoop(
                            "too many levels of symbolic links", path, errno.ELOOP
                        ) from None
                    target = _readlink(current, name, path)
                    if target.startswith("/"):
                        raise OutsideRoot(
                            "an absolute symbolic link leads out of the workspace", path
                        ) from None
                    pending.extend(reversed(target.split("/")))
            real = tuple(step.name for step in stack)
            return (stack.take() if stack else os.dup(self._fd)), real
        finally:
            stack.close()


@dataclass
class _Step(Level):
    """A directory the component walk went through."""

    name: str = ""


def _mkdir(dir_fd: int, name: str) -> None:
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise from_os_error(exc, name, "create directory") from None


def _readlink(dir_fd: int, name: str, path: str) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        # Swapped for something else since we looked: report as busy, let the caller retry.
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            raise Busy("a path component changed while being resolved", path) from None
        raise from_os_error(exc, path, "read symbolic link") from None


def _kind(mode: int) -> EntryKind:
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if stat.S_ISDIR(mode):
        return EntryKind.DIRECTORY
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    return EntryKind.OTHER


def _holds_mount(fd: int) -> bool:
    """Whether any mount point lies beneath the directory open at ``fd``.

    A pre-check from /proc/self/mountinfo, so a refusal comes before anything is deleted;
    the walk that removes a tree refuses to cross a mount on its own regardless.
    """
    # Compared as bytes: mountinfo holds raw names, escaped octally (see ``_unescape``).
    try:
        where = os.readlink(os.fsencode(f"/proc/self/fd/{fd}"))
        with open("/proc/self/mountinfo", "rb") as info:
            lines = info.read().splitlines()
    except OSError:
        return False
    prefix = where.rstrip(b"/") + b"/"
    for line in lines:
        fields = line.split(b" ")
        if len(fields) > 4 and _unescape(fields[4]).startswith(prefix):
            return True
    return False


_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> bytes:
    """Undo mountinfo's octal escapes (``\\040`` for a space...), byte for byte."""
    return _OCTAL_ESCAPE.sub(lambda match: bytes([int(match[1], 8)]), field)


__all__ = ["Entry", "EntryKind", "Root", "SandboxError"]
