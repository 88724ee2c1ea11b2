"""``DeferredStore``: a store opened on first use, and tried again while it cannot open.

A state directory on a read-only or full disk must not keep the service from starting:
requests without an Idempotency-Key never touch the store, and the others answer the
store's problem until the disk is usable again, with no restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.idempotency.store import Claim, IdempotencyStore, StoredResponse, StoreUnavailable


class DeferredStore(IdempotencyStore):
    """The store ``open_store`` makes, made when first needed; stale claims are dropped as
    it opens, before any claim of this process."""

    def __init__(self, open_store: Callable[[], IdempotencyStore]) -> None:
        self._open_store = open_store
        self._lock = threading.Lock()
        self._store: IdempotencyStore | None = None

    def opened(self) -> IdempotencyStore:
        """The store, opened now if it was not; raises ``StoreUnavailable``."""
        with self._lock:
            if self._store is None:
                self._open_locked()
            assert self._store is not None
            return self._store

    def unavailable(self) -> StoreUnavailable | None:
        """Why the store cannot open, or None once it is open."""
        try:
            self.opened()
        except StoreUnavailable as exc:
            return exc
        return None

    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        return self.opened().claim(caller, key, fingerprint)

    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        self.opened().complete(caller, key, response)

    def release(self, caller: str, key: str) -> None:
        self.opened().release(caller, key)

    def release_stale(self) -> int:
        """Open the store now: the stale claims it drops as it opens (0 if already open)."""
        with self._lock:
            return 0 if self._store is not None else self._open_locked()

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _open_locked(self) -> int:
        store = self._open_store()
        try:
            released = store.release_stale()
        except BaseException:
            store.close()
            raise
        self._store = store
        return released
