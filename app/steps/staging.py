"""The staging area: deletes that can be undone, journaled on disk so a crash undoes them.

A delete inside a transaction does not remove its target: it renames it into the root's
hidden area (``RESERVED_NAME``, which no request path or glob can reach), after writing
down where it came from. Renames keep entries whole (contents, modes, timestamps, symlinks
as links), so putting them back restores the workspace exactly; the parent directories'
times, which a rename changes, are journaled and reset too. Layout::

    .stepd/lock                   flock: shared for plain batches, exclusive for atomic ones
    .stepd/trash/<txn>/journal    JSON lines; each fsynced before the moves it describes
    .stepd/trash/<txn>/<n>        the n-th entry moved aside

Journal records: ``{"stage": [{"n", "workspace", "path", "parentTimes"}, ...]}`` (before
the moves), then ``{"end": "commit"}`` or, once every entry is back, ``{"end": "abort"}``.
A transaction runs ``begin -> stage* -> commit | rollback``, then ``purge`` frees its
directory. ``commit`` and ``purge`` are separate steps so that purging can move to the
background: a directory whose journal has an end record (or has no journal: it is written
before anything moves and removed only by purging) holds nothing but garbage.

``Staging.recover`` rolls back every transaction without an end record (the process died
mid-batch), then purges every transaction directory (or hands them to the background
purger, ``purger.py``: ``hand_leftovers_to``). ``Staging.ready`` runs it once before the
first step: at start-up, or, when the filesystem refused then (read-only, full), on the
next request that tries again. A plain batch needs no new space here (the lock file and
the journal are only for atomic batches), so deleting still works on a full disk.

A plain (non-atomic) delete uses the same trash without a journal: ``Detachment`` renames
its targets (directories and big files: ``worth_detaching``) into a fresh
``.stepd/trash/<id>/`` and the purger frees them later. No journal
and no fsync are needed there, because nothing is ever put back: each rename is atomic, so
a crash leaves every target either still in the workspace (the delete did not happen; the
client got no answer and retries) or in the trash, where a directory without a journal is
garbage that recovery purges. It is never half-deleted. Durability is that of an unlink
(neither is fsynced): after a power loss a target may reappear, as with ``rm``. When that
directory cannot be made (the trash is on another filesystem, or the filesystem is full or
read-only), the targets are removed in place instead: a full disk must not stop deletes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.sandbox import Entry, Root
from app.sandbox.errors import CrossDevice, NoSpace, ReadOnlyFilesystem, from_os_error
from app.sandbox.remove import Pace, no_pace
from app.steps.errors import AtomicUnsupported
from app.steps.workspace import RESERVED_NAME

log = logging.getLogger(__name__)

TRASH = "trash"
JOURNAL = "journal"
LOCK = "lock"


class TxnState(StrEnum):
    OPEN = "open"  # no end record: roll back
    COMMITTED = "commit"  # the moves stand: purge
    ABORTED = "abort"  # rolled back: purge what could not go back


@dataclass(frozen=True)
class Move:
    """One journaled move: entry ``n`` of the transaction came from ``path`` in ``workspace``."""

    n: int
    workspace: str | None
    path: str
    parent_times: tuple[int, int]

    def record(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "workspace": self.workspace,
            "path": self.path,
            "parentTimes": list(self.parent_times),
        }

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Move:
        atime, mtime = data["parentTimes"]
        return cls(int(data["n"]), data["workspace"], str(data["path"]), (int(atime), int(mtime)))


@dataclass(frozen=True)
class Recovery:
    """What ``Staging.recover`` found: transactions rolled back, directories purged."""

    rolled_back: int
    purged: int


class Staging:
    """The root's staging area; one per process, shared by every request.

    Nothing is created on construction: the area is opened (and made) when first needed,
    so that a root that is read-only or full at start-up can still be served. ``prepare``
    recovers what a killed process left; ``ready`` runs it once, before the first step.
    Until the area exists and is recovered, what needs it answers the filesystem's error
    (``ReadOnlyFilesystem``, ``NoSpace``...) and the next request tries again.

    ``shared=False`` says that no other process or thread works in the root (the
    ``stepd step`` command): plain batches then take no lock, so a root that never sees
    an atomic batch is never given a staging area.
    """

    def __init__(self, root: Root, *, shared: bool = True) -> None:
        self.root = root
        self.shared = shared
        self._mutex = threading.Lock()
        self._ready_mutex = threading.Lock()
        self._private: Root | None = None
        self._trash: Root | None = None
        self._recovered = False
        self._idle_lock_fds: list[int] = []
        self._take_leftovers: Callable[[list[str]], None] | None = None

    def close(self) -> None:
        with self._mutex:
            while self._idle_lock_fds:
                os.close(self._idle_lock_fds.pop())
            for opened in (self._trash, self._private):
                if opened is not None:
                    opened.close()
            self._trash = self._private = None

    def hand_leftovers_to(self, take: Callable[[list[str]], None]) -> None:
        """Have recovery leave the transaction directories it finds (once rolled back
        where needed) to ``take``, the background purger, instead of purging them."""
        self._take_leftovers = take

    @property
    def trash(self) -> Root:
        """The directory of the transactions, created (with the area) if missing."""
        with self._mutex:
            if self._trash is None:
                if self._private is None:
                    self._private = self.root.open_private(RESERVED_NAME)
                assert self._private is not None
                trash = self._private.open_subdir(TRASH, create=True)
                assert trash is not None
                self._trash = trash
            return self._trash

    def prepare(self) -> Recovery:
        """``ready``, then create the area and its lock file if missing (so that they
        need no space later); raises ``SandboxError`` when the filesystem does not allow
        it yet (call it again later)."""
        recovery = self.ready()
        fd = self._open_lock(required=True)
        assert fd is not None
        os.close(fd)
        return recovery

    def ready(self) -> Recovery:
        """Make sure no transaction a killed process left is still unrecovered: recover
        them once (see ``recover``). Needs no new space when there is nothing to recover.
        Raises the error that keeps recovery from running; until it succeeds, no step may
        run."""
        if self._recovered:
            return Recovery(0, 0)
        with self._ready_mutex:
            if self._recovered:
                return Recovery(0, 0)
            recovery = Recovery(0, 0)
            if self._has_trash():
                take = self._take_leftovers
                with self.lock(exclusive=True):
                    recovery = self.recover(purge=take is None)
                    if take is not None:
                        take(self.pending())
            self._recovered = True
            return recovery

    def _has_trash(self) -> bool:
        if self._trash is not None:
            return True
        private = self.root.open_private(RESERVED_NAME, create=False)
        if private is None:
            return False
        with private:
            trash = private.open_subdir(TRASH)
        if trash is None:
            return False
        trash.close()
        return True

    def _area(self) -> Root:
        """The private directory, with the trash in it, created if missing."""
        _ = self.trash
        assert self._private is not None
        return self._private

    @contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the workspace lock: shared by plain batches, exclusive for an atomic one.

        An atomic batch must see no concurrent change, and nobody may see its uncommitted
        moves (a delete answering "absent" for a target that a rollback then restores).
        flock is released by the kernel when a process dies, and works across processes.
        Each holder needs an open file of its own (flock belongs to the open file, so two
        holders sharing one would unlock each other); idle ones are kept for the next
        request rather than opened and closed every time.

        A shared lock needs no new space: when the lock file is missing and cannot be made
        (read-only or full filesystem), no atomic batch can hold it either, so a plain
        batch runs without it.
        """
        if not (self.shared or exclusive):
            yield
            return
        try:
            fd: int | None = self._idle_lock_fds.pop()
        except IndexError:
            fd = self._open_lock(required=exclusive)
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._idle_lock_fds.append(fd)

    def _open_lock(self, *, required: bool) -> int | None:
        try:
            private = self._area()
        except (ReadOnlyFilesystem, NoSpace):
            if required:
                raise
            return None
        try:
            # Read-only is enough for flock, and kept open it would block a remount ro.
            return os.open(LOCK, os.O_RDONLY | os.O_CREAT | _NOFOLLOW, 0o600, dir_fd=private.fd)
        except OSError as exc:
            error = from_os_error(exc, "", "open the workspace lock")
        if isinstance(error, ReadOnlyFilesystem):
            # flock needs no write access; an existing file can still be locked.
            try:
                return os.open(LOCK, os.O_RDONLY | _NOFOLLOW, dir_fd=private.fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                error = from_os_error(exc, "", "open the workspace lock")
        if required or not isinstance(error, ReadOnlyFilesystem | NoSpace):
            raise error
        return None

    def begin(self) -> Transaction:
        """A new transaction; its directory is made when it first stages something."""
        return Transaction(self, uuid.uuid4().hex)

    def pending(self) -> list[str]:
        """Ids of the transactions whose directories are still in the trash."""
        return self.trash.names()

    def state(self, txn_id: str) -> TxnState:
        """Where transaction ``txn_id`` stands, from its journal."""
        return Transaction(self, txn_id).state()

    def detachment(self) -> Detachment:
        """A new trash directory for a plain delete's targets (made at the first move)."""
        return Detachment(self)

    def held(self, txn_id: str) -> int:
        """How many entries trash directory ``txn_id`` holds (its journal left out)."""
        txn_dir = self.trash.open_subdir(txn_id)
        if txn_dir is None:
            return 0
        with txn_dir:
            return len([name for name in txn_dir.names() if name != JOURNAL])

    def recover(self, *, purge: bool = True) -> Recovery:
        """Roll back every unfinished transaction, then purge every transaction directory
        (unless ``purge`` is False: the background purger will)."""
        rolled_back = purged = 0
        for txn_id in self.pending():
            txn = Transaction(self, txn_id)
            if txn.state() is TxnState.OPEN:
                txn.rollback()
                rolled_back += 1
            if purge:
                txn.purge()
                purged += 1
        if purged:
            log.info("staging recovery: %d rolled back, %d purged", rolled_back, purged)
        return Recovery(rolled_back, purged)


# Smaller files (and symlinks) are unlinked in place: as fast as renaming them, and it
# spares the purger a directory to free per request.
DETACH_MIN_BYTES = 1 << 20


def worth_detaching(entry: Entry) -> bool:
    """Whether removing ``entry`` may take long enough to be left to the purger: a
    directory (any size: only a walk would tell), or a file of ``DETACH_MIN_BYTES``."""
    return entry.size is None or entry.size >= DETACH_MIN_BYTES


class Detachment:
    """A plain delete's trash directory, without a journal (see the module doc).

    ``moved`` entries are in it, of ``size`` bytes (None once a directory is among them);
    ``created`` says whether it exists, that is whether it must be purged.
    """

    def __init__(self, staging: Staging) -> None:
        self.staging = staging
        self.txn_id = ""  # named when made: a delete of absent targets needs none
        self.created = False
        self.moved = 0
        self.size: int | None = 0
        self._dir: Root | None = None

    def detach(self, workspace_root: Root, entries: Sequence[Entry]) -> list[Entry]:
        """Move ``entries`` (looked up in ``workspace_root``) into the trash directory; one
        already gone is fine. Returns those left where they are because the trash is on
        another filesystem (``CrossDevice``), or cannot be made or grown (the filesystem
        is full or read-only): the caller removes them in place."""
        if not entries:
            return []
        if self._dir is None:
            txn_id = uuid.uuid4().hex
            try:
                self._dir = self.staging.trash.open_subdir(txn_id, create=True)
            except (NoSpace, ReadOnlyFilesystem):
                return list(entries)
            assert self._dir is not None
            self.txn_id = txn_id
            self.created = True
        for index, entry in enumerate(entries):
            try:
                moved = workspace_root.move_out(entry.real_path, self._dir, str(self.moved))
            except (CrossDevice, NoSpace, ReadOnlyFilesystem):
                return list(entries[index:])
            if moved:
                self.moved += 1
                if self.size is not None:
                    self.size = None if entry.size is None else self.size + entry.size
        return []

    def close(self) -> None:
        """Close its directory (kept open from the first move on, for the next steps)."""
        if self._dir is not None:
            self._dir.close()


class Transaction:
    """Entries moved aside together, to be committed (then purged) or put back."""

    def __init__(self, staging: Staging, txn_id: str) -> None:
        self.staging = staging
        self.id = txn_id
        self.created = False  # whether this object made its directory (to be purged)
        self._next = 0

    def stage(self, workspace_root: Root, workspace: str | None, entries: Sequence[Entry]) -> None:
        """Move ``entries`` (looked up in ``workspace_root``, named ``workspace``) aside.

        The moves are journaled and synced first. Raises ``AtomicUnsupported`` when the
        staging area is on another filesystem, and the sandbox's errors otherwise; what
        was moved before the error stays journaled, for ``rollback``.
        """
        if not entries:
            return
        moves = [
            Move(self._next + i, workspace, entry.real_path, entry.parent_times)
            for i, entry in enumerate(entries)
        ]
        self._next += len(moves)
        with self._directory(create=True) as txn_dir:
            assert txn_dir is not None
            self._append(txn_dir, {"stage": [move.record() for move in moves]})
            for move in moves:
                try:
                    workspace_root.move_out(move.path, txn_dir, str(move.n))
                except CrossDevice:
                    raise AtomicUnsupported(move.path) from None

    def commit(self) -> None:
        """Make the moves final: from now on the staged entries are only garbage."""
        self._end(TxnState.COMMITTED)

    def rollback(self) -> None:
        """Put every staged entry back where it was, latest first, then record the abort.

        An entry whose place is taken, or whose parent is gone, stays for the purge: a
        later change superseded it (as if this transaction had never run).
        """
        with self._directory(create=False) as txn_dir:
            if txn_dir is None:
                return
            moves = [move for record in _read(txn_dir) for move in _moves(record)]
            for move in reversed(moves):
                if txn_dir.lookup(str(move.n)) is None:
                    continue  # journaled, but the process died before moving it
                if not self._put_back(txn_dir, move):
                    log.warning(
                        "staging %s: cannot restore %r in workspace %r: superseded; purging it",
                        self.id,
                        move.path,
                        move.workspace,
                    )
            try:
                self._append(txn_dir, {"end": TxnState.ABORTED.value})
            except NoSpace:
                # Everything that could go back is back; the purge follows. Should the
                # process die first, recovery finds nothing more to put back.
                log.warning("staging %s: no space to journal the rollback's end", self.id)

    def purge(self, *, pace: Pace = no_pace) -> None:
        """Free the transaction's directory and everything still in it; ``pace`` as for
        ``Root.remove``."""
        self.staging.trash.remove(self.id, pace=pace)

    def state(self) -> TxnState:
        """Open, committed or aborted, from the journal's end record."""
        with self._directory(create=False) as txn_dir:
            if txn_dir is None or txn_dir.lookup(JOURNAL) is None:
                return TxnState.ABORTED
            for record in _read(txn_dir):
                if "end" in record:
                    return TxnState(record["end"])
        return TxnState.OPEN

    def _put_back(self, txn_dir: Root, move: Move) -> bool:
        root = self.staging.root
        if move.workspace is None:
            return root.move_in(txn_dir, str(move.n), move.path, move.parent_times)
        workspace = root.open_subdir(move.workspace)
        if workspace is None:
            return False
        with workspace:
            return workspace.move_in(txn_dir, str(move.n), move.path, move.parent_times)

    def _end(self, state: TxnState) -> None:
        with self._directory(create=False) as txn_dir:
            if txn_dir is not None:
                self._append(txn_dir, {"end": state.value})

    @contextmanager
    def _directory(self, *, create: bool) -> Iterator[Root | None]:
        trash = self.staging.trash
        txn_dir = trash.open_subdir(self.id)
        if txn_dir is None and create:
            txn_dir = trash.open_subdir(self.id, create=True)
            assert txn_dir is not None
            self.created = True
            # The journal must be findable after a crash: sync its name, and the dir's.
            _create_journal(txn_dir)
            txn_dir.sync()
            trash.sync()
        try:
            yield txn_dir
        finally:
            if txn_dir is not None:
                txn_dir.close()

    @staticmethod
    def _append(txn_dir: Root, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        try:
            fd = os.open(JOURNAL, os.O_WRONLY | os.O_APPEND | _NOFOLLOW, dir_fd=txn_dir.fd)
            try:
                end = os.lseek(fd, 0, os.SEEK_END)
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    os.fsync(fd)
                except OSError:
                    # A torn record would swallow the next one: cut it off (no space needed).
                    with suppress(OSError):
                        os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)
        except OSError as exc:
            raise from_os_error(exc, "", "write the staging journal") from None


_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _create_journal(txn_dir: Root) -> None:
    try:
        fd = os.open(JOURNAL, os.O_WRONLY | os.O_CREAT | _NOFOLLOW, 0o600, dir_fd=txn_dir.fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise from_os_error(exc, "", "create the staging journal") from None


def _read(txn_dir: Root) -> Iterator[dict[str, Any]]:
    """The journal's records; a torn last line (the process died writing it) is dropped."""
    try:
        fd = os.open(JOURNAL, os.O_RDONLY | _NOFOLLOW, dir_fd=txn_dir.fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise from_os_error(exc, "", "read the staging journal") from None
    with os.fdopen(fd, "rb") as journal:
        for line in journal:
            try:
                record = json.loads(line)
            except ValueError:
                return
            if isinstance(record, dict):
                yield record


def _moves(record: dict[str, Any]) -> list[Move]:
    return [Move.parse(item) for item in record.get("stage", ())]
