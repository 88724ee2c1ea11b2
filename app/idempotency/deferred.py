"""``DeferredStore``: a store opened on first use, tried again while it cannot open, and
opened again when the place it was opened in is no longer where it should be.

A state directory on a read-only or full disk must not keep the service from starting:
requests without an Idempotency-Key never touch the store, and the others answer the
store's problem until the disk is usable again, with no restart. A state directory under
the workspace root can be moved or replaced by whoever writes there: before each use the
opener's ``current`` check says whether the store is still the one to use (a couple of
``stat`` calls), and if not it is closed and opened anew, wherever it now belongs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.idempotency.store import (
    Claim,
    IdempotencyStore,
    StoredResponse,
    StoreUnavailable,
    Sweep,
)

# What an opener returns: the store, and a check that it is still the one to use.
Opened = tuple[IdempotencyStore, Callable[[], bool]]


class DeferredStore(IdempotencyStore):
    """The store ``open_store`` makes, made when first needed and checked at every use.

    Calls are serialised (the SQLite store serialises them anyway), so that a store is
    never closed under a call.
    """

    def __init__(self, open_store: Callable[[], Opened]) -> None:
        self._open_store = open_store
        self._lock = threading.Lock()
        self._store: IdempotencyStore | None = None
        self._current: Callable[[], bool] = lambda: True

    def unavailable(self) -> StoreUnavailable | None:
        """Why the store cannot be used now, or None when it can (it is opened now)."""
        try:
            with self._lock:
                self._opened()
        except StoreUnavailable as exc:
            return exc
        return None

    def claim(self, caller: str, key: str, fingerprint: str) -> Claim:
        with self._lock:
            return self._opened().claim(caller, key, fingerprint)

    def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        with self._lock:
            self._opened().complete(caller, key, response)

    def release(self, caller: str, key: str) -> None:
        with self._lock:
            self._opened().release(caller, key)

    def renew(self) -> int:
        """Renew through the open store; none opened (or no longer current) holds no claim
        of ours, so nothing is opened for it."""
        with self._lock:
            if self._store is None or not self._current():
                return 0
            return self._store.renew()

    def sweep(self) -> Sweep:
        """Sweep the open store; none opened (or no longer current) is left for later."""
        with self._lock:
            if self._store is None or not self._current():
                return Sweep()
            store = self._store
        # Unlocked: a sweep's chunks must not hold every claim back; a store closed
        # meanwhile answers StoreUnavailable.
        return store.sweep()

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _opened(self) -> IdempotencyStore:
        """The store to use now, opened if needed; raises ``StoreUnavailable``."""
        if self._store is not None and not self._current():
            self._close_locked()
        if self._store is None:
            self._store, self._current = self._open_store()
        return self._store

    def _close_locked(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            store.close()
