"""Stores to run the store contract against, each opened for several owners on the same
records (as processes sharing a state directory, or replicas sharing a database).

A store behind ``IdempotencyStore`` joins the contract by adding a parameter to
``open_store``: a function that opens that store over the test's records for an owner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.idempotency.sqlite import SQLiteStore
from app.idempotency.store import IdempotencyStore
from app.sandbox import Root

TTL = timedelta(hours=1)
LEASE = timedelta(seconds=30)
MAX_RECORDS = 5

OpenStore = Callable[[str], IdempotencyStore]


class Clock:
    """A wall clock that tests move by hand (``now += seconds``)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _sqlite(tmp_path: Path, clock: Clock) -> OpenStore:
    (tmp_path / "state").mkdir(exist_ok=True)

    def open_store(owner: str) -> IdempotencyStore:
        directory = Root.open(tmp_path / "state")
        return SQLiteStore(
            directory, TTL, owner=owner, lease=LEASE, max_records=MAX_RECORDS, clock=clock
        )

    return open_store


@pytest.fixture(params=["sqlite"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[OpenStore]:
    """Opens the store under test for an owner; every store opened is closed after."""
    opened: list[IdempotencyStore] = []
    make = {"sqlite": _sqlite}[request.param](tmp_path, clock)

    def open_for(owner: str) -> IdempotencyStore:
        store = make(owner)
        opened.append(store)
        return store

    yield open_for
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> IdempotencyStore:
    """The store under test, for owner ``a``."""
    return open_store("a")


@pytest.fixture
def other(open_store: OpenStore) -> IdempotencyStore:
    """The same records, for another owner ``b`` (another process, or replica)."""
    return open_store("b")
