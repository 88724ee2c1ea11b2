"""``DeferredStore``: opened when first needed, tried again until it opens, opened again
when the place it was opened in is no longer current; ``LeaseKeeper`` renews and
``Sweeper`` sweeps through it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.idempotency.deferred import DeferredStore, Opened
from app.idempotency.lease import LeaseKeeper
from app.idempotency.sqlite import SQLiteStore
from app.idempotency.store import ClaimOutcome, StoredResponse, StoreUnavailable, Sweep
from app.idempotency.sweeper import Sweeper
from app.sandbox import Root
from tests.idempotency.conftest import LEASE, MAX_RECORDS, TTL


def _opener(directory: Path, current: list[bool]) -> Opened:
    try:
        root = Root.open(directory)
    except OSError as exc:
        raise StoreUnavailable("io_error", str(exc)) from None
    return SQLiteStore(root, TTL, owner="a", lease=LEASE, max_records=MAX_RECORDS), lambda: current[
        0
    ]


def test_opens_once_its_directory_exists(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = DeferredStore(lambda: _opener(state, [True]))
    unavailable = store.unavailable()
    assert unavailable is not None
    assert unavailable.code == "io_error"
    with pytest.raises(StoreUnavailable):
        store.claim("c", "k", "fp")
    assert store.renew() == 0  # nothing opened for it
    state.mkdir()
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    assert store.unavailable() is None
    store.close()


def test_opens_again_where_it_belongs_once_no_longer_current(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    current = [True]
    places = iter([first, second])
    store = DeferredStore(lambda: _opener(next(places), current))
    store.claim("c", "k", "fp")
    current[0] = False
    assert store.renew() == 0  # a store no longer current holds none of our claims
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW  # in ``second``
    assert sorted(p.name for p in second.iterdir())[0] == "idempotency.sqlite3"
    store.close()


def test_the_lease_keeper_renews_while_the_process_runs(tmp_path: Path) -> None:
    class Counting(DeferredStore):
        renewals = 0

        def renew(self) -> int:
            Counting.renewals += 1
            return super().renew()

    store = Counting(lambda: _opener(tmp_path, [True]))
    keeper = LeaseKeeper(store, lease=0.03)
    keeper.start()
    deadline = time.monotonic() + 30
    while Counting.renewals < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    keeper.stop()
    store.close()
    assert Counting.renewals >= 3


def test_the_sweeper_keeps_the_store_under_its_cap(tmp_path: Path) -> None:
    store = DeferredStore(lambda: _opener(tmp_path, [True]))
    for n in range(MAX_RECORDS + 4):
        store.claim("c", f"k{n}", "fp")
        store.complete("c", f"k{n}", StoredResponse(200, "application/json", b"{}"))
    sweeps: list[Sweep] = []
    sweeper = Sweeper(store, sweeps.append, interval=0.01)
    sweeper.start()
    deadline = time.monotonic() + 30
    while len(sweeps) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    sweeper.stop()
    store.close()
    assert sweeps[:2] == [Sweep(0, 4, MAX_RECORDS), Sweep(0, 0, MAX_RECORDS)]
