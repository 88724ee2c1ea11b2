"""stepd's own area in the root, ``.stepd``: reached through the sandbox, trusted only
while it is stepd's, and checked again at every use.

Layout (the trash is ``staging.py``'s, the database ``app.idempotency.sqlite``'s)::

    .stepd/          a real directory on the root's own mount, owned by stepd's user, 0700
    .stepd/lock      the batches' flock
    .stepd/trash/    entries staged by atomic batches or detached by plain deletes
    .stepd/state/    the idempotency database, unless STEPD_STATE_DIR puts it elsewhere

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

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.sandbox import Root
from app.sandbox.errors import Busy, FilesystemError, OutsideRoot, SandboxError
from app.steps.workspace import RESERVED_NAME

log = logging.getLogger(__name__)

TRASH = "trash"
STATE = "state"


class Unusable(Exception):
    """The area (or a directory in it) is not one stepd can trust; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}: refused")


@dataclass(eq=False)
class Area:
    """One opening of ``.stepd`` and of the trash in it, shared by whoever uses it now.

    ``recovered`` is set once what a killed process left in this trash was recovered;
    ``idle_lock_fds`` are open lock files kept for the next batch (see ``Staging.lock``).
    """

    directory: Root
    trash: Root
    recovered: bool = False
    idle_lock_fds: list[int] = field(default_factory=list)
    users: int = 0
    retired: bool = False

    def close(self) -> None:
        while self.idle_lock_fds:
            os.close(self.idle_lock_fds.pop())
        self.trash.close()
        self.directory.close()


class StateArea:
    """The root's ``.stepd``, opened when first used and checked again at every use."""

    def __init__(self, root: Root) -> None:
        self.root = root
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
            assert state is not None
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
        # is discarded).
        area = self._area
        if area is not None and self.is_current(area):
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
                    area = self._area = _open(self.root, create)
                except FilesystemError as exc:
                    raise anonymous(exc, "open stepd's own area") from None
                if area is None and create:
                    raise Busy("stepd's own area was removed as it was being made")
            if area is not None:
                area.users += 1
            return area

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


def _open(root: Root, create: bool) -> Area | None:
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
    try:
        # An empty trash (one just made, above all) holds nothing to recover.
        recovered = not trash.names()
    except BaseException:
        trash.close()
        directory.close()
        raise
    return Area(directory, trash, recovered=recovered)


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
