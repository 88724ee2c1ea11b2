"""``LeaseKeeper``: renews the leases of the claims this process holds, while it runs.

A claim is renewed for as long as its owner is alive (``store.py``): a daemon thread calls
``IdempotencyStore.renew`` every third of the lease, so two renewals can fail in a row
before another process may take a claim over. A renewal that fails (the store is
unavailable) is logged and tried again at the next tick.
"""

from __future__ import annotations

import logging
import threading

from app.idempotency.store import IdempotencyStore, StoreUnavailable

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews ``store``'s claims every ``lease / 3`` seconds in a thread of its own."""

    def __init__(self, store: IdempotencyStore, lease: float) -> None:
        self.store = store
        self.interval = lease / 3
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepd-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop renewing (at shutdown, once no request runs)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.store.renew()
            except StoreUnavailable as exc:
                log.warning("idempotency leases not renewed: %s", exc.message)
            except Exception:
                log.exception("idempotency leases not renewed: unexpected error")
