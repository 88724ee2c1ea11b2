"""Where the responses to requests with an Idempotency-Key are kept, behind a small
interface so that a store shared by several replicas can replace the SQLite one.

Records are keyed by (caller, key): ``caller`` names who sent the request (the bearer
token's identity, "anonymous" without authentication), so that two callers' keys never
collide. A record is
first *in flight* (claimed by the request running now), then *complete* (holds the
response to replay) until it expires.
"""

from __future__ import annotations

import hashlib
import json
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


class StoreUnavailable(Exception):
    """The store cannot read or keep records now (a full or read-only disk, say); ``code``
    is the problem to answer: ``no_space``, ``read_only_filesystem`` or ``io_error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class IdempotencyStore(ABC):
    """Idempotency records. Implementations are safe to call from several threads, and
    raise ``StoreUnavailable`` when their storage fails."""

    @abstractmethod
    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        """Claim ``key`` for a request with ``fingerprint``, or say why it cannot run."""

    @abstractmethod
    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        """Keep ``response`` as the answer to the claimed request, until it expires."""

    @abstractmethod
    def release(self, caller: str, key: str) -> None:
        """Drop a claim whose request produced nothing worth replaying; it may be retried."""

    @abstractmethod
    def release_stale(self) -> int:
        """Drop every in-flight claim left by a process that died; the number dropped.

        Called at start-up, when no request of this store's process can be running.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources."""


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
