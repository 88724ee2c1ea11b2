"""What every ``IdempotencyStore`` guarantees (the semantics at the top of
``app/idempotency/store.py``), for each store of the ``open_store`` fixture."""

from __future__ import annotations

from app.idempotency.store import ClaimOutcome, IdempotencyStore, StoredResponse
from tests.idempotency.conftest import LEASE, TTL, Clock, OpenStore

RESPONSE = StoredResponse(200, "application/json", b'{"deleted":[]}')
OTHER_RESPONSE = StoredResponse(404, "application/problem+json", b"{}")
LEASE_SECONDS = LEASE.total_seconds()


def test_claim_complete_replay(store: IdempotencyStore) -> None:
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    store.complete("c", "k", RESPONSE)
    replay = store.claim("c", "k", "fp")
    assert (replay.outcome, replay.response) == (ClaimOutcome.REPLAY, RESPONSE)
    assert store.claim("c", "k", "other").outcome is ClaimOutcome.MISMATCH


def test_callers_do_not_share_keys(store: IdempotencyStore) -> None:
    store.claim("alice", "k", "fp")
    assert store.claim("bob", "k", "other").outcome is ClaimOutcome.NEW


def test_records_expire_after_ttl(store: IdempotencyStore, clock: Clock) -> None:
    store.claim("c", "k", "fp")
    store.complete("c", "k", RESPONSE)
    clock.now += TTL.total_seconds() - 1
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.REPLAY
    clock.now += 1
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW


def test_release_lets_a_retry_run(store: IdempotencyStore) -> None:
    store.claim("c", "k", "fp")
    store.release("c", "k")
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.NEW


def test_a_complete_record_is_replayed_by_every_owner(
    store: IdempotencyStore, other: IdempotencyStore
) -> None:
    store.claim("c", "k", "fp")
    store.complete("c", "k", RESPONSE)
    assert other.claim("c", "k", "fp").response == RESPONSE


def test_a_live_claim_is_never_taken_however_long_it_runs(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    store.claim("c", "k", "fp")
    for _ in range(10):  # ten leases long, renewed every third of one
        for _ in range(3):
            clock.now += LEASE_SECONDS / 3
            assert store.renew() == 1
            assert other.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    store.complete("c", "k", RESPONSE)
    assert other.claim("c", "k", "fp").response == RESPONSE


def test_a_new_owner_starting_does_not_drop_live_claims(
    open_store: OpenStore, clock: Clock
) -> None:
    first = open_store("host/1")
    first.claim("c", "k", "fp")
    restarted = open_store("host/2")  # the same instance name, another process
    clock.now += LEASE_SECONDS / 2
    assert restarted.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    first.complete("c", "k", RESPONSE)
    assert restarted.claim("c", "k", "fp").response == RESPONSE


def test_a_lapsed_claim_is_taken_over(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    store.claim("c", "k", "fp")
    clock.now += LEASE_SECONDS - 0.001
    assert other.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    clock.now += 0.001
    assert other.claim("c", "k", "fp").outcome is ClaimOutcome.NEW
    # The first owner comes back: its claim is no longer its own.
    store.complete("c", "k", OTHER_RESPONSE)
    store.release("c", "k")
    assert store.renew() == 0
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    other.complete("c", "k", RESPONSE)
    assert store.claim("c", "k", "fp").response == RESPONSE


def test_a_lapsed_claim_frees_its_key_for_any_request(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    store.claim("c", "k", "fp")
    clock.now += LEASE_SECONDS
    assert other.claim("c", "k", "another request").outcome is ClaimOutcome.NEW


def test_renew_extends_only_the_owners_own_claims(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    store.claim("c", "mine", "fp")
    store.claim("c", "done", "fp")
    store.complete("c", "done", RESPONSE)
    other.claim("c", "theirs", "fp")
    clock.now += LEASE_SECONDS * 2 / 3
    assert store.renew() == 1
    clock.now += LEASE_SECONDS * 2 / 3
    assert other.claim("c", "mine", "fp").outcome is ClaimOutcome.IN_FLIGHT
    assert store.claim("c", "theirs", "fp").outcome is ClaimOutcome.NEW


def test_release_and_complete_leave_another_owners_claim_alone(
    store: IdempotencyStore, other: IdempotencyStore
) -> None:
    other.claim("c", "k", "fp")
    store.release("c", "k")
    store.complete("c", "k", OTHER_RESPONSE)
    assert store.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    other.complete("c", "k", RESPONSE)
    assert store.claim("c", "k", "fp").response == RESPONSE
