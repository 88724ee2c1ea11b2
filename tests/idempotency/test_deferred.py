"""``DeferredStore``: opened when first needed, tried again until it opens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.idempotency.deferred import DeferredStore
from app.idempotency.sqlite import SQLiteStore
from app.idempotency.store import ClaimOutcome, StoreUnavailable


def test_opens_once_its_directory_can_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory goes")
    store = DeferredStore(lambda: SQLiteStore(blocker / "db", timedelta(hours=1)))
    unavailable = store.unavailable()
    assert unavailable is not None
    assert unavailable.code == "io_error"
    with pytest.raises(StoreUnavailable):
        store.claim("c", "k", "fp")
    blocker.unlink()
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    assert store.unavailable() is None
    store.close()


def test_drops_stale_claims_as_it_opens_and_only_then(tmp_path: Path) -> None:
    crashed = SQLiteStore(tmp_path / "db", timedelta(hours=1))
    crashed.claim("c", "left-running", "fp")
    crashed.close()
    store = DeferredStore(lambda: SQLiteStore(tmp_path / "db", timedelta(hours=1)))
    assert store.claim("c", "left-running", "fp").outcome is ClaimOutcome.NEW
    assert store.release_stale() == 0  # already open: the claim above is no stale one
    assert store.claim("c", "left-running", "fp").outcome is ClaimOutcome.IN_FLIGHT
    store.close()
