"""``SQLiteStore``: idempotency records in an embedded SQLite database.

One connection, serialised by a lock (requests run in threads). WAL with
``synchronous=NORMAL``: a record survives the process being killed; a power cut may lose
the last records, which only means such a request would run again. Expired records are
deleted as new keys are claimed. Meant for the processes of one host sharing a state
directory, one at a time (``release_stale`` at start-up assumes no other process is
serving from it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from app.idempotency.store import Claim, ClaimOutcome, IdempotencyStore, StoredResponse

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
    """Records in the SQLite database at ``path``; each lives ``ttl`` after its claim."""

    def __init__(
        self, path: Path, ttl: timedelta, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        now = self._clock()
        with self._lock:
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
                self._db.execute("ROLLBACK")
                raise
        return claim

    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE idempotency SET in_flight = 0, status = ?, content_type = ?, body = ?"
                " WHERE caller = ? AND key = ?",
                (response.status, response.content_type, response.body, caller, key),
            )

    def release(self, caller: str, key: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM idempotency WHERE caller = ? AND key = ? AND in_flight = 1",
                (caller, key),
            )

    def release_stale(self) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM idempotency WHERE in_flight = 1").rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
