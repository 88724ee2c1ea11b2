"""``SQLiteStore``: idempotency records in an embedded SQLite database.

One connection, serialised by a lock (requests run in threads). WAL with
``synchronous=NORMAL``: a record survives the process being killed; a power cut may lose
the last records, which only means such a request would run again (``synchronous=FULL``
would close that window at the cost of an fsync per claim and per answer). ``sweep``
deletes expired and evicted records in chunks, returns the pages freed to the filesystem
(``auto_vacuum=INCREMENTAL``) and empties the WAL (``wal_checkpoint(TRUNCATE)``). Several
processes of one host may share a database (SQLite locks it); owners and leases keep
their claims apart (see ``store.py``). Every SQLite or OS error becomes
``StoreUnavailable``, classified as a full disk, a read-only one, or another I/O failure.

The database is reached through its directory's descriptor, never by path. SQLite's own
Unix VFS turns every name into a canonical path (following each symlink on the way,
``/proc/self/fd/N`` included) and opens that string, so a directory swapped in after the
check would be followed; the store registers a VFS that inherits everything from it but
that (``xFullPathname``), and opens ``/proc/self/fd/<directory>/idempotency.sqlite3``: the
kernel resolves the descriptor to exactly the directory stepd opened and checked, and
SQLite names its ``-wal``, ``-shm`` and ``-journal`` files the same way. Before opening,
each of the four that exists must be a regular file of the directory's own mount, not a
symlink (``Root.open_file``); that the directory lets nobody else plant one later is its
opener's business (``app.steps.area``).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import apsw

from app.idempotency.store import (
    Claim,
    ClaimOutcome,
    IdempotencyStore,
    StoredResponse,
    StoreUnavailable,
    Sweep,
)
from app.sandbox import Root
from app.sandbox.errors import FilesystemError, SandboxError

DATABASE = "idempotency.sqlite3"
_SIDE_FILES = ("-wal", "-shm", "-journal")
VFS_NAME = "stepd-fd"
# Rows one transaction of ``sweep`` deletes at most.
SWEEP_CHUNK = 5000
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for incremental vacuum

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    caller       TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    in_flight    INTEGER NOT NULL,
    status       INTEGER,
    content_type TEXT,
    body         BLOB,
    expires_at   REAL NOT NULL,
    owner        TEXT,
    lease_until  REAL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
"""
# What ``sweep`` deletes, a chunk at a time: expired records (a claim only once its lease
# lapsed too), then the oldest complete ones beyond the cap.
_DELETE_EXPIRED = """
DELETE FROM idempotency WHERE rowid IN (
    SELECT rowid FROM idempotency WHERE expires_at <= ?
    AND (in_flight = 0 OR lease_until IS NULL OR lease_until <= ?) LIMIT ?)
"""
_DELETE_OLDEST = """
DELETE FROM idempotency WHERE rowid IN (
    SELECT rowid FROM idempotency WHERE in_flight = 0 ORDER BY expires_at LIMIT ?)
"""
# Columns later versions added, for databases made before them: their claims have no
# owner and no lease, so they count as abandoned.
_ADDED_COLUMNS = {"owner": "TEXT", "lease_until": "REAL"}


class _DescriptorVFS(apsw.VFS):
    """SQLite's Unix VFS, but names are used as they are: never made canonical."""

    def __init__(self) -> None:
        super().__init__(VFS_NAME, "unix")

    def xFullPathname(self, name: str) -> str:  # SQLite's name
        return name


_vfs: _DescriptorVFS | None = None
_vfs_lock = threading.Lock()


def _register_vfs() -> None:
    global _vfs  # one registration per process
    with _vfs_lock:
        if _vfs is None:
            _vfs = _DescriptorVFS()


class SQLiteStore(IdempotencyStore):
    """Records in ``idempotency.sqlite3`` of ``directory`` (which the store takes over and
    closes), for ``owner``; each lives ``ttl`` after its claim, a claim's lease lasts
    ``lease`` from its claim or last renewal, and ``sweep`` keeps ``max_records``."""

    def __init__(
        self,
        directory: Root,
        ttl: timedelta,
        *,
        owner: str,
        lease: timedelta,
        max_records: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._ttl = ttl.total_seconds()
        self._max_records = max_records
        self._lease = lease.total_seconds()
        self.owner = owner
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        try:
            for name in (DATABASE, *(DATABASE + suffix for suffix in _SIDE_FILES)):
                _check_file(directory, name)
            _register_vfs()
            with self._translated():
                self._db = apsw.Connection(
                    f"/proc/self/fd/{directory.fd}/{DATABASE}",
                    flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE,
                    vfs=VFS_NAME,
                )
                try:
                    # Closing must write nothing: the directory may no longer be the one
                    # to write to (it was moved away). The WAL stays until the next open.
                    self._db.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
                    self._db.set_busy_timeout(30_000)
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA synchronous=NORMAL")
                    # Takes effect in a new database; an older one is converted below.
                    self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                    self._db.execute(_SCHEMA)
                    self._add_columns()
                    self._make_vacuumable()
                except BaseException:
                    self._db.close()
                    raise
        except BaseException:
            directory.close()
            raise

    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        now = self._clock()
        claimed = (fingerprint, now + self._ttl, self.owner, now + self._lease, caller, key)
        with self._lock, self._translated():
            # A key seen for the first time (the usual case): one statement, which is its
            # own transaction. Otherwise the record is read and changed in one.
            if self._insert(claimed):
                return Claim(ClaimOutcome.NEW)
            with self._transaction():
                return self._claim_existing(now, fingerprint, claimed)

    def _insert(self, claimed: tuple[Any, ...]) -> bool:
        """Insert the claim ``claimed`` unless its key has a record; whether it did."""
        self._db.execute(
            "INSERT INTO idempotency (fingerprint, in_flight, expires_at, owner,"
            " lease_until, caller, key) VALUES (?, 1, ?, ?, ?, ?, ?)"
            " ON CONFLICT (caller, key) DO NOTHING",
            claimed,
        )
        return bool(self._db.changes())

    def _claim_existing(self, now: float, fingerprint: str, claimed: tuple[Any, ...]) -> Claim:
        """Claim a key that had a record when first tried, in a transaction."""
        if self._insert(claimed):  # deleted since (released, or swept)
            return Claim(ClaimOutcome.NEW)
        caller, key = claimed[-2:]
        fp, in_flight, status, content_type, body, expires_at, lease_until = self._row(
            "SELECT fingerprint, in_flight, status, content_type, body, expires_at,"
            " lease_until FROM idempotency WHERE caller = ? AND key = ?",
            (caller, key),
        )
        # An expired record, or a claim whose owner stopped renewing it: as if absent.
        lapsed = lease_until is None or lease_until <= now
        if lapsed if in_flight else expires_at <= now:
            self._db.execute(
                "UPDATE idempotency SET fingerprint = ?, in_flight = 1, status = NULL,"
                " content_type = NULL, body = NULL, expires_at = ?, owner = ?,"
                " lease_until = ? WHERE caller = ? AND key = ?",
                claimed,
            )
            return Claim(ClaimOutcome.NEW)
        if fp != fingerprint:
            return Claim(ClaimOutcome.MISMATCH)
        if in_flight:
            return Claim(ClaimOutcome.IN_FLIGHT)
        return Claim(ClaimOutcome.REPLAY, StoredResponse(status, content_type, bytes(body)))

    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        with self._lock, self._translated():
            self._db.execute(
                "UPDATE idempotency SET in_flight = 0, status = ?, content_type = ?, body = ?,"
                " owner = NULL, lease_until = NULL"
                " WHERE caller = ? AND key = ? AND in_flight = 1 AND owner = ?",
                (response.status, response.content_type, response.body, caller, key, self.owner),
            )

    def release(self, caller: str, key: str) -> None:
        with self._lock, self._translated():
            self._db.execute(
                "DELETE FROM idempotency WHERE caller = ? AND key = ? AND in_flight = 1"
                " AND owner = ?",
                (caller, key, self.owner),
            )

    def renew(self) -> int:
        with self._lock, self._translated():
            self._db.execute(
                "UPDATE idempotency SET lease_until = ? WHERE in_flight = 1 AND owner = ?",
                (self._clock() + self._lease, self.owner),
            )
            renewed: int = self._db.changes()
            return renewed

    def sweep(self) -> Sweep:
        now = self._clock()
        # In chunks, each its own transaction, so that claims wait for one chunk at most.
        expired = self._delete_chunks(_DELETE_EXPIRED, (now, now), None)
        with self._lock, self._translated():
            kept: int = self._row("SELECT count(*) FROM idempotency")[0]
        evicted = 0
        if kept > self._max_records:
            evicted = self._delete_chunks(_DELETE_OLDEST, (), kept - self._max_records)
        with self._lock, self._translated():
            # Free pages go back to the filesystem, and the WAL is emptied.
            self._db.execute("PRAGMA incremental_vacuum").fetchall()  # a page per row
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return Sweep(expired, evicted, kept - evicted)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            try:
                self._db.close()
            finally:
                self._directory.close()

    def _add_columns(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(idempotency)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in columns:
                self._db.execute(f"ALTER TABLE idempotency ADD COLUMN {name} {kind}")

    def _delete_chunks(self, delete: str, params: tuple[float, ...], most: int | None) -> int:
        """Run ``delete`` (its last parameter is a ``LIMIT``), ``SWEEP_CHUNK`` rows at a
        time, until it deletes no more or ``most`` are deleted; how many were."""
        deleted = 0
        while most is None or deleted < most:
            chunk = SWEEP_CHUNK if most is None else min(SWEEP_CHUNK, most - deleted)
            with self._lock, self._translated():
                self._db.execute(delete, (*params, chunk))
                changed: int = self._db.changes()
            deleted += changed
            if changed < chunk:
                break
        return deleted

    def _row(self, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        """The one row ``query`` gives."""
        row: tuple[Any, ...] | None = self._db.execute(query, params).fetchone()
        assert row is not None  # a count, a pragma, or a row this transaction holds
        return row

    def _make_vacuumable(self) -> None:
        """Convert a database made without incremental vacuum, once: ``VACUUM`` rewrites it."""
        if self._row("PRAGMA auto_vacuum")[0] != INCREMENTAL:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if not self._db.getautocommit():  # SQLite may have rolled back already
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's and the OS's errors into ``StoreUnavailable``."""
        if self._closed:  # a sweep in another thread, as the store was closed
            raise StoreUnavailable("io_error", "the idempotency store was closed")
        try:
            yield
        except (apsw.Error, OSError) as exc:
            raise _unavailable(exc, self._directory) from exc


def _check_file(directory: Root, name: str) -> None:
    """Refuse ``name`` unless it is absent or a regular file of the directory's mount."""
    try:
        os.close(directory.open_file(name, os.O_RDONLY))
    except FilesystemError as exc:
        if exc.errno != errno.ENOENT:
            raise _unavailable(OSError(exc.errno, exc.message), directory) from None
    except SandboxError as exc:
        raise StoreUnavailable(
            "io_error", f"the idempotency store is unavailable: {exc.message} (refused)"
        ) from None


def _unavailable(exc: Any, directory: Root) -> StoreUnavailable:
    """Classify ``exc``; SQLite's own codes say little when a file cannot be opened, so
    then the directory's filesystem is asked whether it is read-only or full."""
    err = exc.errno if isinstance(exc, OSError) else None
    if isinstance(exc, apsw.FullError) or err in (errno.ENOSPC, errno.EDQUOT):
        code = "no_space"
    elif isinstance(exc, apsw.ReadOnlyError) or err == errno.EROFS:
        code = "read_only_filesystem"
    else:
        code = _filesystem_state(directory)
    reason = exc.strerror if isinstance(exc, OSError) else str(exc)
    return StoreUnavailable(code, f"the idempotency store is unavailable: {reason}")


def _filesystem_state(directory: Root) -> str:
    """The problem code for the filesystem holding ``directory``."""
    try:
        st = os.fstatvfs(directory.fd)
    except OSError:
        return "io_error"
    if st.f_flag & os.ST_RDONLY:
        return "read_only_filesystem"
    if st.f_bavail == 0 or (st.f_files and st.f_favail == 0):  # some report no inodes
        return "no_space"
    return "io_error"
