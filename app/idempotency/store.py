"""Where the responses to requests with an Idempotency-Key are kept, behind a small
interface so that a store shared by several processes or replicas (PostgreSQL, say) can
replace the SQLite one. Every implementation keeps these semantics, and the contract
tests (``tests/idempotency/test_store_contract.py``) check them for each store.

Records are keyed by (caller, key): ``caller`` names who sent the request (the bearer
token's identity, "anonymous" without authentication), so that two callers' keys never
collide. A record is first *in flight* (claimed by the request running now), then
*complete* (holds the response to replay) until it expires, ``ttl`` after its claim.

Owners and leases. A store is opened for one *owner*: the process serving through it,
named by its instance id and a nonce drawn at start-up (``new_owner``), so that a
restarted instance with the same name is another owner. Each claim belongs to the owner
that made it and holds a *lease*, ``lease`` long from the claim or its last renewal; the
owner renews the leases of its claims while their requests run (``renew``, every third of
the lease: ``lease.LeaseKeeper``). Then:

* a claim whose lease holds is never dropped nor taken over: a request with its key
  answers ``IN_FLIGHT`` for as long as the owner renews it, however long its request runs,
  and whatever other process starts on the same store;
* a claim whose lease lapsed (its owner died, or stalled longer than the lease) is
  abandoned: the next claim of its key takes it over (``NEW``), whatever its fingerprint,
  as if it were absent;
* ``complete``, ``release`` and ``renew`` act on the store's owner's own claims only: an
  owner whose claim was taken over can neither overwrite nor drop its successor's;
* a complete record has no owner and no lease: any owner replays it until it expires.

Expiry and the cap. Every store is opened with ``ttl``, ``lease`` and ``max_records``:

* a record expires ``ttl`` after its claim: a claim of its key finds it absent (``NEW``,
  whatever its fingerprint), unless it is a claim whose lease holds, which never expires;
* ``sweep`` deletes the expired records, then, while more than ``max_records`` records are
  kept, evicts complete records oldest first (claimed earliest), never a claim in flight
  (those are bounded by the requests running at once, and may exceed the cap alone).
  Eviction happens in ``sweep`` only: between two sweeps the store may hold the records
  claimed since the last one beyond the cap. An evicted record is as if expired. A sweep
  also gives the space it freed back to the filesystem where the store can. Several
  owners may sweep the same records at once.

Times are the store's clock (wall-clock seconds): a store shared by several hosts must
compare them on one clock (its database server's).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class StoredResponse:
    """A response as it is replayed: status, content type and body."""

    status: int
    content_type: str
    body: bytes


class ClaimOutcome(StrEnum):
    NEW = "new"  # the caller owns the key now: run the request, then complete or release
    REPLAY = "replay"  # the same request already ran: ``Claim.response`` is its answer
    IN_FLIGHT = "in_flight"  # the same key is being used by a request running now
    MISMATCH = "mismatch"  # the key was used for a different request


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    response: StoredResponse | None = None


@dataclass(frozen=True)
class Sweep:
    """What one ``sweep`` did: records deleted as ``expired``, complete records ``evicted``
    to keep under the cap, and the records ``kept`` after it (in flight included)."""

    expired: int = 0
    evicted: int = 0
    kept: int = 0


class StoreUnavailable(Exception):
    """The store cannot read or keep records now (a full or read-only disk, say); ``code``
    is the problem to answer: ``no_space``, ``read_only_filesystem`` or ``io_error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class IdempotencyStore(ABC):
    """Idempotency records, claimed and completed for one owner (see the module doc).
    Implementations are safe to call from several threads (``close`` included, while a
    ``sweep`` runs: the sweep then stops), and raise ``StoreUnavailable`` when their
    storage fails."""

    @abstractmethod
    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        """Claim ``key`` for a request with ``fingerprint``, or say why it cannot run."""

    @abstractmethod
    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        """Keep ``response`` as the answer to the claimed request, until it expires (a
        claim no longer the owner's is left as it is)."""

    @abstractmethod
    def release(self, caller: str, key: str) -> None:
        """Drop the owner's claim whose request produced nothing worth replaying; the key
        may be used again at once."""

    @abstractmethod
    def renew(self) -> int:
        """Extend the lease of every claim the owner holds to ``lease`` from now; how many
        there were."""

    @abstractmethod
    def sweep(self) -> Sweep:
        """Delete the expired records, evict complete ones oldest first down to
        ``max_records``, and give the space freed back where the store can."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources."""


def new_owner(instance: str) -> str:
    """An owner name for this process: ``instance`` (STEPD_INSTANCE_ID) and a nonce."""
    return f"{instance}/{secrets.token_hex(6)}"


def fingerprint(method: str, path: str, body: bytes) -> str:
    """A hash of the request: its target and its body, as canonical JSON when it is JSON
    (so that key order and spacing do not matter), as bytes otherwise."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()
