"""``PostgresStore``: idempotency records in a PostgreSQL database shared by replicas.

All of stepd's SQL for PostgreSQL is in this module. Connections come from a pool
(psycopg 3 and psycopg-pool); each is checked before use, so that a database restarted
meanwhile costs a reconnection, not a failed request. Every driver error becomes
``StoreUnavailable("store_unavailable")``: the request does not run, and answers 503.

Schema. Created or migrated at the store's first use, under a transaction-level advisory
lock, so that replicas starting together apply each migration once; ``stepd_schema``
holds the version reached. Records live in ``stepd_idempotency``.

Time. Expiries and leases are compared on the database server's clock
(``clock_timestamp()``): replicas on hosts whose clocks differ still agree on when a lease
lapsed. A ``clock`` given to the store (tests) replaces it.

Expiry and the cap. A claim replaces its key's record once expired (or its claim's lease
lapsed), so the semantics never depend on the sweep. ``sweep`` (every replica's sweeper
calls it) deletes the expired records a chunk per statement, then, under an advisory lock
so that replicas sweeping together evict no more than needed, the oldest complete ones
beyond ``max_records``; PostgreSQL's autovacuum gives the space back.

Completions that cannot be written. A response whose record the database refused (it
went away after the claim) is kept in memory, its claim renewed, and written again at each
``renew`` until it is: meanwhile a retry of its key answers in flight, never runs again.
Only if this process dies first does the claim lapse and a retry run again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from app.idempotency.store import (
    Claim,
    ClaimOutcome,
    IdempotencyStore,
    StoredResponse,
    StoreUnavailable,
    Sweep,
)

log = logging.getLogger(__name__)

TABLE = "stepd_idempotency"
# Any constant shared by every stepd: the key of the advisory lock migrations run under.
_MIGRATION_LOCK = 0x73746570  # "step"
# Seconds to connect to the database, and to wait for a pooled connection, before
# answering 503: a database that is down refuses at once, but one that is unreachable
# (a network partition) only times out.
CONNECT_TIMEOUT = 5
POOL_TIMEOUT = 3.0
# Records deleted per statement by a sweep.
_SWEEP_BATCH = 1000

# Each migration, in order; the version reached is kept in stepd_schema.
_MIGRATIONS = (
    """
    CREATE TABLE stepd_idempotency (
        caller       text NOT NULL,
        key          text NOT NULL,
        fingerprint  text NOT NULL,
        in_flight    boolean NOT NULL,
        status       integer,
        content_type text,
        body         bytea,
        expires_at   double precision NOT NULL,
        owner        text,
        lease_until  double precision,
        PRIMARY KEY (caller, key)
    );
    CREATE INDEX stepd_idempotency_expiry ON stepd_idempotency (expires_at);
    -- The current time in epoch seconds: the one given (a test's clock), or the server's.
    CREATE FUNCTION stepd_now(given double precision) RETURNS double precision
        LANGUAGE sql STABLE AS
        'SELECT COALESCE(given, extract(epoch FROM clock_timestamp())::double precision)';
    """,
)


_CLAIM_CLEAR = """
DELETE FROM stepd_idempotency
 WHERE caller = %(caller)s AND key = %(key)s
   AND CASE WHEN in_flight THEN lease_until IS NULL OR lease_until <= stepd_now(%(now)s)
            ELSE expires_at <= stepd_now(%(now)s) END
"""
_CLAIM_INSERT = """
INSERT INTO stepd_idempotency
       (caller, key, fingerprint, in_flight, expires_at, owner, lease_until)
VALUES (%(caller)s, %(key)s, %(fingerprint)s, true,
        stepd_now(%(now)s) + %(ttl)s, %(owner)s, stepd_now(%(now)s) + %(lease)s)
ON CONFLICT (caller, key) DO NOTHING
"""
_CLAIM_READ = """
SELECT fingerprint, in_flight, status, content_type, body FROM stepd_idempotency
 WHERE caller = %(caller)s AND key = %(key)s
"""
_COMPLETE = """
UPDATE stepd_idempotency
   SET in_flight = false, status = %(status)s, content_type = %(content_type)s,
       body = %(body)s, owner = NULL, lease_until = NULL
 WHERE caller = %(caller)s AND key = %(key)s AND in_flight AND owner = %(owner)s
"""
_RELEASE = """
DELETE FROM stepd_idempotency
 WHERE caller = %(caller)s AND key = %(key)s AND in_flight AND owner = %(owner)s
"""
_RENEW = """
UPDATE stepd_idempotency SET lease_until = stepd_now(%(now)s) + %(lease)s
 WHERE in_flight AND owner = %(owner)s
   AND (caller, key) IN (SELECT * FROM unnest(%(callers)s::text[], %(keys)s::text[]))
"""
_DELETE_EXPIRED = """
DELETE FROM stepd_idempotency WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM stepd_idempotency WHERE expires_at <= stepd_now(%(now)s)
       AND (NOT in_flight OR lease_until IS NULL OR lease_until <= stepd_now(%(now)s))
     LIMIT %(batch)s))
"""
_DELETE_OLDEST = """
DELETE FROM stepd_idempotency WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM stepd_idempotency WHERE NOT in_flight
     ORDER BY expires_at LIMIT %(batch)s))
"""
# Replicas sweeping at once count and evict one after the other.
_EVICTION_LOCK = _MIGRATION_LOCK + 1

Key = tuple[str, str]


class PostgresStore(IdempotencyStore):
    """Records in the database at ``url`` (a libpq URL), for ``owner``; each lives ``ttl``
    after its claim, and a claim's lease lasts ``lease`` from its claim or last renewal.
    The first use migrates the schema; every use raises ``StoreUnavailable`` while the
    database cannot be reached."""

    def __init__(
        self,
        url: str,
        ttl: timedelta,
        *,
        owner: str,
        lease: timedelta,
        max_records: int,
        pool_size: int = 8,
        timeout: float = POOL_TIMEOUT,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._ttl = ttl.total_seconds()
        self._max_records = max_records
        self._lease = lease.total_seconds()
        self.owner = owner
        self._clock = clock
        # Keys whose claim this owner holds and renews, and completions not yet written.
        self._active: set[Key] = set()
        self._unwritten: dict[Key, StoredResponse] = {}
        self._mutex = threading.Lock()
        self._migrated = False
        self._migrating = threading.Lock()
        # Opened without waiting: a database down at start-up must not keep the service
        # from starting; each use waits ``CONNECT_TIMEOUT`` at most for a connection.
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": CONNECT_TIMEOUT, "autocommit": True},
            name="stepd-idempotency",
            open=False,
        )
        self._pool.open(wait=False)

    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        params = self._params(caller=caller, key=key, fingerprint=fingerprint)
        params.update(ttl=self._ttl, lease=self._lease, owner=self.owner)
        with self._transaction() as conn:
            conn.execute(_CLAIM_CLEAR, params)
            if conn.execute(_CLAIM_INSERT, params).rowcount == 1:
                with self._mutex:
                    self._active.add((caller, key))
                return Claim(ClaimOutcome.NEW)
            # Another claim holds the key: it was committed before our insert looked.
            row = conn.execute(_CLAIM_READ, params).fetchone()
        if row is None:  # expired and cleared by another replica in between: try again
            return self.claim(caller, key, fingerprint)
        if row[0] != fingerprint:
            return Claim(ClaimOutcome.MISMATCH)
        if row[1]:
            return Claim(ClaimOutcome.IN_FLIGHT)
        return Claim(ClaimOutcome.REPLAY, StoredResponse(row[2], row[3], bytes(row[4])))

    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        try:
            self._write_completion(caller, key, response)
        except StoreUnavailable:
            with self._mutex:
                if (caller, key) in self._active:
                    self._unwritten[(caller, key)] = response
            raise

    def release(self, caller: str, key: str) -> None:
        with self._mutex:
            if (caller, key) in self._unwritten:
                return  # its response is to be written: the claim must hold until then
        with self._connection() as conn:
            conn.execute(_RELEASE, self._params(caller=caller, key=key, owner=self.owner))
        with self._mutex:
            self._active.discard((caller, key))

    def renew(self) -> int:
        with self._mutex:
            unwritten = list(self._unwritten.items())
        for (caller, key), response in unwritten:
            self._write_completion(caller, key, response)
            log.info("idempotency record written once the database answered again")
        with self._mutex:
            active = sorted(self._active)
        if not active:
            return 0
        params = self._params(
            owner=self.owner,
            lease=self._lease,
            callers=[caller for caller, _ in active],
            keys=[key for _, key in active],
        )
        with self._connection() as conn:
            renewed: int = conn.execute(_RENEW, params).rowcount
            return renewed

    def sweep(self) -> Sweep:
        expired = 0
        with self._connection() as conn:
            params = self._params(batch=_SWEEP_BATCH)
            while (count := conn.execute(_DELETE_EXPIRED, params).rowcount) > 0:
                expired += count
                if count < _SWEEP_BATCH:
                    break
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_EVICTION_LOCK,))
                row = conn.execute("SELECT count(*) FROM stepd_idempotency").fetchone()
                kept = 0 if row is None else int(row[0])
                evicted = 0
                if kept > self._max_records:
                    params = self._params(batch=kept - self._max_records)
                    evicted = conn.execute(_DELETE_OLDEST, params).rowcount
        return Sweep(expired, evicted, kept - evicted)

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers now."""
        with self._connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        self._pool.close()

    def _write_completion(self, caller: str, key: str, response: StoredResponse) -> None:
        params = self._params(
            caller=caller,
            key=key,
            owner=self.owner,
            status=response.status,
            content_type=response.content_type,
            body=response.body,
        )
        with self._connection() as conn:
            conn.execute(_COMPLETE, params)
        with self._mutex:
            self._active.discard((caller, key))
            self._unwritten.pop((caller, key), None)

    def _params(self, **params: Any) -> dict[str, Any]:
        params["now"] = None if self._clock is None else self._clock()
        return params

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection to a database whose schema is migrated."""
        with _translated(), self._pool.connection() as conn:
            if not self._migrated:
                with self._migrating:
                    if not self._migrated:
                        migrate(conn)
                        self._migrated = True
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._connection() as conn, conn.transaction():
            yield conn


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema to the latest version, once however many replicas start at once
    (they queue on an advisory lock); the version it was at."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS stepd_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM stepd_schema").fetchone()
        version = 0 if row is None else int(row[0])
        for sql in _MIGRATIONS[version:]:
            conn.execute(sql.encode())
        if row is None:
            conn.execute("INSERT INTO stepd_schema VALUES (%s)", (len(_MIGRATIONS),))
        elif version < len(_MIGRATIONS):
            conn.execute("UPDATE stepd_schema SET version = %s", (len(_MIGRATIONS),))
    return version


@contextmanager
def _translated() -> Iterator[None]:
    """Turn the driver's and the pool's errors into ``StoreUnavailable``."""
    try:
        yield
    except (psycopg.Error, PoolTimeout) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(
            "store_unavailable", f"the idempotency database is unavailable: {reason}"
        ) from exc
