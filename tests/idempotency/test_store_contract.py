"""What every ``IdempotencyStore`` guarantees (the semantics at the top of
``app/idempotency/store.py``), for each store of the ``open_store`` fixture."""

from __future__ import annotations

from app.idempotency.store import ClaimOutcome, IdempotencyStore, StoredResponse, Sweep
from tests.idempotency.conftest import LEASE, MAX_RECORDS, TTL, Clock, OpenStore

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


def _complete(store: IdempotencyStore, clock: Clock, keys: list[str]) -> None:
    """Claim and complete ``keys`` one second apart, in that order."""
    for key in keys:
        clock.now += 1
        store.claim("c", key, "fp")
        store.complete("c", key, RESPONSE)


def test_sweep_deletes_the_expired_records(store: IdempotencyStore, clock: Clock) -> None:
    _complete(store, clock, ["first", "second"])
    clock.now += TTL.total_seconds() - 0.5  # "first" expired half a second ago, "second" not
    assert store.sweep() == Sweep(expired=1, evicted=0, kept=1)
    assert store.claim("c", "second", "fp").outcome is ClaimOutcome.REPLAY
    assert store.claim("c", "first", "other").outcome is ClaimOutcome.NEW


def test_sweep_evicts_the_oldest_complete_records_beyond_the_cap(
    store: IdempotencyStore, clock: Clock
) -> None:
    keys = [f"k{n}" for n in range(MAX_RECORDS + 3)]
    _complete(store, clock, keys)
    assert store.sweep() == Sweep(expired=0, evicted=3, kept=MAX_RECORDS)
    assert store.sweep() == Sweep(expired=0, evicted=0, kept=MAX_RECORDS)
    for key in keys[3:]:
        assert store.claim("c", key, "fp").outcome is ClaimOutcome.REPLAY
    for key in keys[:3]:  # as if expired: any request may use the key again
        assert store.claim("c", key, "other").outcome is ClaimOutcome.NEW


def test_claims_in_flight_are_never_evicted(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    running = [f"run{n}" for n in range(MAX_RECORDS + 1)]
    for key in running:  # older than every complete record, and more than the cap
        store.claim("c", key, "fp")
    _complete(store, clock, ["done1", "done2"])
    assert store.sweep() == Sweep(expired=0, evicted=2, kept=MAX_RECORDS + 1)
    for key in running:
        assert other.claim("c", key, "fp").outcome is ClaimOutcome.IN_FLIGHT


def test_a_live_claim_outlives_the_ttl(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    store.claim("c", "k", "fp")
    elapsed = 0.0
    while elapsed <= TTL.total_seconds():
        clock.now += LEASE_SECONDS / 3
        elapsed += LEASE_SECONDS / 3
        store.renew()
    assert other.sweep() == Sweep(expired=0, evicted=0, kept=1)
    assert other.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    store.complete("c", "k", RESPONSE)  # its record expired with its claim: gone at once
    assert other.claim("c", "k", "fp").outcome is ClaimOutcome.NEW


def test_a_lapsed_expired_claim_is_swept(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    store.claim("c", "k", "fp")
    clock.now += TTL.total_seconds()
    assert other.sweep() == Sweep(expired=1, evicted=0, kept=0)
    assert store.renew() == 0


def test_several_owners_sweep_the_same_records(
    store: IdempotencyStore, other: IdempotencyStore, clock: Clock
) -> None:
    _complete(store, clock, [f"k{n}" for n in range(MAX_RECORDS + 2)])
    first, second = store.sweep(), other.sweep()
    assert first.evicted + second.evicted == 2
    assert second.kept == MAX_RECORDS
