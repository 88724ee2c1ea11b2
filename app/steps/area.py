"""stepd's own area in the root, ``.stepd``: reached through the sandbox, trusted only
while it is stepd's, and checked again at every use.

Layout (the trash is ``staging.py``'s, the database ``app.idempotency.sqlite``'s)::

    .stepd/          a real directory on the root's own mount, owned by stepd's user, 0700
    .stepd/lock      the batches' flock, shared by every instance on the root
    .stepd/trash/    entries staged by atomic batches or detached by plain deletes, in
                     directories named ``<instance>~<id>`` by the instance that made them
    .stepd/owners/   one file per instance, flocked by it for as long as it lives
    .stepd/state/    the idempotency database, unless STEPD_STATE_DIR puts it elsewhere

Instances. Several processes (replicas) may serve one root; each has an instance id
(``STEPD_INSTANCE_ID``) and a staging area of its own: its lock in ``owners``, held
exclusively (flock) from the area's opening to its closing, and the trash directories
named after it. Only the instance holding that lock makes, rolls back or purges them;
the kernel (or the NFS server) drops the lock when the process dies, and another
instance then adopts what it left (``Staging.adopt``). An area opened without an instance
(the ``stepd step`` command: alone on the root) holds no lock and owns every directory.

Trust. Whoever can write in the root can put anything at ``.stepd``: a symlink to another
directory, a directory of their own, a mount. So the area, and every directory stepd keeps
in it, is opened through the ``Root``, never by path: no symlink is followed and the
root's mount is never left. And, as ssh requires of ``~/.ssh``, each must be owned by
stepd's effective user and writable by nobody else: then only that user can make or
replace what they hold, so what stepd reaches from there (the lock, journals, the database
and its ``-wal``/``-shm``) is as trustworthy as stepd itself. Anything else is refused with
``Unusable``, saying why: stepd then works without the area (plain deletes happen in
place; atomic batches and requests with an Idempotency-Key answer a problem) and
``/readyz`` says so.

Checked again. Whoever can write in the root can also rename ``.stepd`` (out of the root,
even) or put another directory in its place. The area is opened once and kept, but each
use (``StateArea.using``) first compares the root's ``.stepd`` entry and the ``trash`` in
it with what is open (device and inode), and the owner and mode again: three ``stat``
calls. When anything differs the old opening is retired (closed once its last user is
done) and the area is opened again, made anew where it is gone. What the old one held is
no longer stepd's business: it is never purged, rolled back or written to again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from app.sandbox import Root
from app.sandbox.errors import (
    Busy,
    FilesystemError,
    NoSpace,
    OutsideRoot,
    ReadOnlyFilesystem,
    SandboxError,
)
from app.steps.workspace import RESERVED_NAME

log = logging.getLogger(__name__)

TRASH = "trash"
STATE = "state"
OWNERS = "owners"
REMOVED_WHILE_MADE = "stepd's own area was removed as it was being made"
# Separates the instance id from the rest in a trash directory's name.
OWNER_SEPARATOR = "~"
# Seconds an instance waits for its own lock (another instance adopting what the previous
# process of the same id left holds it that long at most, in practice).
OWNER_WAIT = 2.0


class Unusable(Exception):
    """The area (or a directory in it) is not one stepd can trust; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}: refused")


@dataclass(eq=False)
class Area:
    """One opening of ``.stepd`` and of the trash in it, shared by whoever uses it now.

    ``recovered`` is set once what a killed process left in this trash was recovered;
    ``idle_lock_fds`` are open lock files kept for the next batch (see ``Staging.lock``);
    ``owners`` is the directory of the instances' locks and ``owner_fd`` this instance's,
    held (None without an instance).
    """

    directory: Root
    trash: Root
    recovered: bool = False
    idle_lock_fds: list[int] = field(default_factory=list)
    users: int = 0
    retired: bool = False
    owners: Root | None = None
    owner_fd: int | None = None

    def close(self) -> None:
        while self.idle_lock_fds:
            os.close(self.idle_lock_fds.pop())
        if self.owner_fd is not None:
            os.close(self.owner_fd)
        if self.owners is not None:
            self.owners.close()
        self.trash.close()
        self.directory.close()


class StateArea:
    """The root's ``.stepd``, opened when first used and checked again at every use."""

    def __init__(self, root: Root, instance: str | None = None) -> None:
        self.root = root
        self.instance = instance
        self._mutex = threading.Lock()
        self._area: Area | None = None

    @contextmanager
    def using(self, *, create: bool = True) -> Iterator[Area | None]:
        """The area as it is now, held open for the block; made first if missing and
        ``create``, else None when missing.

        Raises ``Unusable`` when it cannot be trusted, and the sandbox's error when it
        cannot be made (``ReadOnlyFilesystem``, ``NoSpace``, ``Busy`` when it is removed
        as it is made...).
        """
        area = self._acquire(create)
        try:
            yield area
        finally:
            if area is not None:
                self._release(area)

    def is_current(self, area: Area) -> bool:
        """Whether ``area`` is still the root's ``.stepd``, as stepd can trust it."""
        try:
            return self._unchanged(area)
        except (OSError, SandboxError):
            return False

    def open_state(self) -> tuple[Root, Callable[[], bool]]:
        """``.stepd/state`` (made if missing), checked as the area is, with a check that it
        is still there: in the same opening of the area, and the very directory opened."""
        with self.using() as area:
            assert area is not None
            state = open_trusted(area.directory, STATE, create=True)
            if state is None:
                raise Busy(REMOVED_WHILE_MADE)
            opened_in = area

        def current() -> bool:
            try:
                with self.using(create=False) as now:
                    return now is opened_in and now.directory.same_entry(STATE, state)
            except (Unusable, SandboxError):
                return False

        return state, current

    def close(self) -> None:
        with self._mutex:
            if self._area is not None:
                self._retire(self._area)

    def _acquire(self, create: bool) -> Area | None:
        # The usual case, checked outside the mutex so that concurrent users do not queue
        # behind each other's ``stat`` calls: the opening is current, and still the one
        # kept (a result about one retired meanwhile, its descriptors closed or reused,
        # is discarded). An opening still without this instance's lock takes the slow way.
        area = self._area
        if area is not None and self._held(area) and self.is_current(area):
            with self._mutex:
                if self._area is area and not area.retired:
                    area.users += 1
                    return area
        with self._mutex:
            area = self._area
            if area is not None and not self.is_current(area):
                log.warning(
                    "stepd's own area %r was moved or replaced: opening it again", RESERVED_NAME
                )
                self._retire(area)
                area = None
            if area is None:
                try:
                    area = self._area = _open(self.root, create, self.instance)
                except FilesystemError as exc:
                    raise anonymous(exc, "open stepd's own area") from None
                if area is None and create:
                    raise Busy(REMOVED_WHILE_MADE)
            if area is not None:
                if not self._held(area):
                    assert self.instance is not None
                    take_ownership(area, self.instance, wait=0)
                area.users += 1
            return area

    def _held(self, area: Area) -> bool:
        """Whether ``area`` is held as this instance's (or needs no holding)."""
        return self.instance is None or area.owner_fd is not None

    def _release(self, area: Area) -> None:
        with self._mutex:
            area.users -= 1
            if area.retired and area.users == 0:
                area.close()

    def _retire(self, area: Area) -> None:
        if self._area is area:
            self._area = None
        area.retired = True
        if area.users == 0:
            area.close()

    def _unchanged(self, area: Area) -> bool:
        if not self.root.same_entry(RESERVED_NAME, area.directory):
            return False
        if not area.directory.same_entry(TRASH, area.trash):
            return False
        try:
            trusted(area.directory, RESERVED_NAME)
        except Unusable:
            return False
        return True


def _open(root: Root, create: bool, instance: str | None) -> Area | None:
    try:
        directory = root.open_private(RESERVED_NAME, create=create)
    except OutsideRoot as exc:
        raise Unusable(f"{RESERVED_NAME!r} in the workspace root: {exc.message}") from None
    if directory is None:
        return None
    try:
        trusted(directory, RESERVED_NAME)
        trash = open_trusted(directory, TRASH, create=create)
    except BaseException:
        directory.close()
        raise
    if trash is None:
        directory.close()
        return None
    area = Area(directory, trash)
    try:
        if instance is not None:
            take_ownership(area, instance)
        # A trash holding nothing of ours (one just made, above all) has nothing to recover.
        area.recovered = not any(owned(name, instance) for name in trash.names())
    except BaseException:
        area.close()
        raise
    return area


def take_ownership(area: Area, instance: str, wait: float = OWNER_WAIT) -> None:
    """Hold ``instance``'s lock in ``area`` unless it is held already. A filesystem that
    is read-only or full may not let the lock be made: the area is then left without it
    (nothing can be staged there anyway), and the next use tries again. Raises
    ``Unusable`` when a live process holds it, ``Busy`` when the area is removed as the
    lock is being made."""
    if area.owner_fd is not None:
        return
    removed = False
    try:
        if area.owners is None:
            area.owners = open_trusted(area.directory, OWNERS, create=True)
        if area.owners is None:
            removed = True
        else:
            area.owner_fd = hold(area.owners, instance, wait)
    except (ReadOnlyFilesystem, NoSpace):
        return
    except FilesystemError:
        if os.fstat(area.directory.fd).st_nlink:
            raise
        removed = True
    if removed:
        # The area was removed (by hand, say) as the lock was being made in it.
        raise Busy(REMOVED_WHILE_MADE)
    if area.owner_fd is None:
        raise Unusable(
            f"the staging area of instance {instance!r} is held by a live process "
            "(does another replica have the same STEPD_INSTANCE_ID?)"
        )


def owner_of(name: str) -> str | None:
    """The instance a trash directory belongs to; None when its name names none."""
    owner, separator, _ = name.partition(OWNER_SEPARATOR)
    return owner if separator else None


def owned(name: str, instance: str | None) -> bool:
    """Whether trash directory ``name`` is ``instance``'s to recover: its own, or one no
    instance owns (left by a process without an instance). Without an instance, all are."""
    return instance is None or owner_of(name) in (instance, None)


def hold(owners: Root, instance: str, wait: float) -> int | None:
    """Hold ``instance``'s lock in ``owners`` (made if missing): its open file, locked
    exclusively; None if another process still held it after ``wait`` seconds.

    The file locked must be the one named so once locked: an adopter unlinks the lock of
    an instance it adopted, and whoever waited on that file then tries the new one."""
    deadline = time.monotonic() + wait
    while True:
        fd = owners.open_file(instance, os.O_RDONLY | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        except BaseException:
            os.close(fd)
            raise
        with suppress(OSError):
            named = os.stat(instance, dir_fd=owners.fd, follow_symlinks=False)
            opened = os.fstat(fd)
            if (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino):
                return fd
        os.close(fd)


def open_trusted(area: Root, name: str, *, create: bool) -> Root | None:
    """The directory ``name`` of the area (made first if ``create``), checked as the area
    itself is; None when it is missing and not ``create``d."""
    what = f"{RESERVED_NAME}/{name}"
    try:
        opened = area.open_subdir(name, create=create)
    except OutsideRoot as exc:
        raise Unusable(f"{what!r}: {exc.message}") from None
    if opened is None:
        if area.lookup(name) is not None:
            raise Unusable(f"{what!r} is not a directory")
        return None
    try:
        trusted(opened, what)
    except BaseException:
        opened.close()
        raise
    return opened


def trusted(directory: Root, what: str) -> None:
    """Raise ``Unusable`` unless ``directory`` is owned by stepd's effective user and
    writable by no one else (its group and others)."""
    st = os.fstat(directory.fd)
    uid = os.geteuid()
    if st.st_uid != uid:
        raise Unusable(f"{what!r} is owned by user {st.st_uid}, not by stepd's user {uid}")
    if st.st_mode & 0o022:
        mode = oct(st.st_mode & 0o777)
        raise Unusable(f"{what!r} is writable by others than its owner (mode {mode})")


def anonymous(exc: FilesystemError, action: str) -> FilesystemError:
    """``exc`` without the name it carries: the names of stepd's own files and
    directories (a trash directory's, above all) are nobody's business, and must never
    reach an answer."""
    reason = os.strerror(exc.errno) if exc.errno else exc.message
    return type(exc)(f"cannot {action}: {reason}", path="", err=exc.errno)
