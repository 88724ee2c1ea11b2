"""``SQLiteStore``: idempotency records in an embedded SQLite database.

One connection, serialised by a lock (requests run in threads). WAL with
``synchronous=NORMAL``: a record survives the process being killed; a power cut may lose
the last records, which only means such a request would run again. Expired records are
deleted as new keys are claimed. Meant for the processes of one host sharing a state
directory, one at a time (``release_stale`` at start-up assumes no other process is
serving from it). Every SQLite or OS error becomes ``StoreUnavailable``, classified as a
full disk, a read-only one, or another I/O failure.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from app.idempotency.store import (
    Claim,
    ClaimOutcome,
    IdempotencyStore,
    StoredResponse,
    StoreUnavailable,
)

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
    PRIMARY KEY (caller, key)
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
"""


class SQLiteStore(IdempotencyStore):
    """Records in the SQLite database at ``path`` (its directory is created, mode 0700);
    each lives ``ttl`` after its claim."""

    def __init__(
        self, path: Path, ttl: timedelta, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._directory = path.parent
        with self._translated():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
            except BaseException:
                self._db.close()
                raise

    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        now = self._clock()
        with self._lock, self._translated():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,))
                row = self._db.execute(
                    "SELECT fingerprint, in_flight, status, content_type, body FROM idempotency"
                    " WHERE caller = ? AND key = ?",
                    (caller, key),
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO idempotency (caller, key, fingerprint, in_flight, expires_at)"
                        " VALUES (?, ?, ?, 1, ?)",
                        (caller, key, fingerprint, now + self._ttl),
                    )
                    claim = Claim(ClaimOutcome.NEW)
                elif row[0] != fingerprint:
                    claim = Claim(ClaimOutcome.MISMATCH)
                elif row[1]:
                    claim = Claim(ClaimOutcome.IN_FLIGHT)
                else:
                    claim = Claim(ClaimOutcome.REPLAY, StoredResponse(row[2], row[3], row[4]))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    self._db.execute("ROLLBACK")
                raise
        return claim

    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        with self._lock, self._translated():
            self._db.execute(
                "UPDATE idempotency SET in_flight = 0, status = ?, content_type = ?, body = ?"
                " WHERE caller = ? AND key = ?",
                (response.status, response.content_type, response.body, caller, key),
            )

    def release(self, caller: str, key: str) -> None:
        with self._lock, self._translated():
            self._db.execute(
                "DELETE FROM idempotency WHERE caller = ? AND key = ? AND in_flight = 1",
                (caller, key),
            )

    def release_stale(self) -> int:
        with self._lock, self._translated():
            return self._db.execute("DELETE FROM idempotency WHERE in_flight = 1").rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's and the OS's errors into ``StoreUnavailable``."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc, self._directory) from exc


def _unavailable(exc: sqlite3.Error | OSError, directory: Path) -> StoreUnavailable:
    """Classify ``exc``; SQLite's own codes say little when a file cannot be opened, so
    then the state directory's filesystem is asked whether it is read-only or full."""
    result = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    err = exc.errno if isinstance(exc, OSError) else None
    if result == sqlite3.SQLITE_FULL or err in (errno.ENOSPC, errno.EDQUOT):
        code = "no_space"
    elif result == sqlite3.SQLITE_READONLY or err == errno.EROFS:
        code = "read_only_filesystem"
    else:
        code = _filesystem_state(directory)
    reason = exc.strerror if isinstance(exc, OSError) else str(exc)
    return StoreUnavailable(code, f"the idempotency store is unavailable: {reason}")


def _filesystem_state(directory: Path) -> str:
    """The problem code for the filesystem holding ``directory`` (or its nearest parent)."""
    for candidate in (directory, *directory.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        if st.f_flag & os.ST_RDONLY:
            return "read_only_filesystem"
        if st.f_bavail == 0 or (st.f_files and st.f_favail == 0):  # some report no inodes
            return "no_space"
        break
    return "io_error"
