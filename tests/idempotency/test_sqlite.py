"""``SQLiteStore``: claims, replays, callers kept apart, expiry, stale claims."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from app.idempotency.sqlite import SQLiteStore
from app.idempotency.store import ClaimOutcome, StoredResponse

RESPONSE = StoredResponse(200, "application/json", b"{}")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_claim_complete_replay(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db", timedelta(hours=1))
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    store.complete("c", "k", RESPONSE)
    assert store.claim("c", "k", "fp").response == RESPONSE
    assert store.claim("c", "k", "other").outcome is ClaimOutcome.MISMATCH
    store.close()


def test_callers_do_not_share_keys(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db", timedelta(hours=1))
    store.claim("alice", "k", "fp")
    assert store.claim("bob", "k", "other").outcome is ClaimOutcome.NEW
    store.close()


def test_records_expire_after_ttl(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteStore(tmp_path / "db", timedelta(seconds=60), clock=clock)
    store.claim("c", "k", "fp")
    store.complete("c", "k", RESPONSE)
    clock.now += 59
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.REPLAY
    clock.now += 1
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    store.close()


def test_release_lets_a_retry_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db", timedelta(hours=1))
    store.claim("c", "k", "fp")
    store.release("c", "k")
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    store.close()


def test_stale_claims_are_released_completed_ones_kept(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db", timedelta(hours=1))
    store.claim("c", "running", "fp")
    store.claim("c", "done", "fp")
    store.complete("c", "done", RESPONSE)
    store.close()
    reopened = SQLiteStore(tmp_path / "db", timedelta(hours=1))
    assert reopened.release_stale() == 1
    assert reopened.claim("c", "running", "fp").outcome is ClaimOutcome.NEW
    assert reopened.claim("c", "done", "fp").outcome is ClaimOutcome.REPLAY
    reopened.close()
