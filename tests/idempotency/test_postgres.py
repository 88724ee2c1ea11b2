"""What the PostgreSQL store does beyond the contract: its schema made once by replicas
starting together, the server's clock, replicas sweeping together, a database that does
not answer, and a response it could not write kept until it can."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest

from app.idempotency.postgres import PostgresStore
from app.idempotency.store import ClaimOutcome, StoredResponse, StoreUnavailable, Sweep
from tests.idempotency.conftest import LEASE, TTL
from tests.support.postgres import Postgres
from tests.support.server import free_port

RESPONSE = StoredResponse(200, "application/json", b"{}")


def test_replicas_starting_together_make_the_schema_once(postgres: Postgres) -> None:
    url = postgres.database()
    stores = [
        PostgresStore(url, TTL, owner=f"r{i}", lease=LEASE, max_records=100, pool_size=1)
        for i in range(6)
    ]
    outcomes: list[ClaimOutcome] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def claim(store: PostgresStore) -> None:
        start.wait()
        try:
            outcomes.append(store.claim("c", "k", "fp").outcome)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert sorted(outcomes) == sorted([ClaimOutcome.NEW] + [ClaimOutcome.IN_FLIGHT] * 5)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM stepd_schema").fetchall() == [(1,)]


def test_times_are_the_database_servers(postgres: Postgres) -> None:
    url = postgres.database()
    ttl, lease = timedelta(seconds=1), timedelta(seconds=0.5)
    store = PostgresStore(url, ttl, owner="a", lease=lease, max_records=100)
    other = PostgresStore(url, ttl, owner="b", lease=lease, max_records=100)
    try:
        assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
        assert other.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
        time.sleep(0.6)  # the lease lapses on the server's clock
        assert other.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
        other.complete("c", "k", RESPONSE)
        assert store.claim("c", "k", "fp").outcome is ClaimOutcome.REPLAY
        time.sleep(1.1)  # and so does the record
        assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    finally:
        store.close()
        other.close()


def test_replicas_sweeping_at_once_evict_no_more_than_the_cap_asks(postgres: Postgres) -> None:
    url = postgres.database()
    stores = [PostgresStore(url, TTL, owner=f"r{i}", lease=LEASE, max_records=10) for i in range(4)]
    try:
        for n in range(30):
            stores[0].claim("c", f"k{n}", "fp")
            stores[0].complete("c", f"k{n}", RESPONSE)
        start = threading.Barrier(len(stores))

        def sweep(store: PostgresStore) -> Sweep:
            start.wait()
            return store.sweep()

        with ThreadPoolExecutor(len(stores)) as pool:
            sweeps = list(pool.map(sweep, stores))
    finally:
        for store in stores:
            store.close()
    assert sum(s.evicted for s in sweeps) == 20
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM stepd_idempotency").fetchone() == (10,)


def test_a_database_that_does_not_answer_is_a_clear_problem() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    store = PostgresStore(url, TTL, owner="a", lease=LEASE, max_records=100, timeout=0.5)
    try:
        for action in (lambda: store.claim("c", "k", "fp"), store.ping):
            with pytest.raises(StoreUnavailable) as raised:
                action()
            assert raised.value.code == "store_unavailable"
            assert "idempotency database is unavailable" in raised.value.message
    finally:
        store.close()


def test_a_response_it_could_not_write_is_written_at_the_next_renewal(
    postgres: Postgres,
) -> None:
    url = postgres.database()
    store = PostgresStore(url, TTL, owner="a", lease=LEASE, max_records=100)
    other = PostgresStore(url, TTL, owner="b", lease=LEASE, max_records=100)
    try:
        store.claim("c", "k", "fp")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE stepd_idempotency RENAME TO away")
            with pytest.raises(StoreUnavailable):
                store.complete("c", "k", RESPONSE)
            store.release("c", "k")  # the middleware's fallback: the claim must hold
            with pytest.raises(StoreUnavailable):
                store.renew()
            conn.execute("ALTER TABLE away RENAME TO stepd_idempotency")
        assert other.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
        assert store.renew() == 0  # written: nothing left to renew
        assert other.claim("c", "k", "fp").response == RESPONSE
    finally:
        store.close()
        other.close()
