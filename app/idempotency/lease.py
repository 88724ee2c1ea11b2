"""``LeaseKeeper``: renews the leases of the claims this process holds, while it runs.

A claim is renewed for as long as its owner is alive (``store.py``): a daemon thread calls
``IdempotencyStore.renew`` every third of the lease, so two renewals can fail in a row
before another process may take a claim over. A renewal that fails (the store is
unavailable) is logged and tried again at the next tick.
"""

from __future__ import annotations

from app.idempotency.store import IdempotencyStore, StoreUnavailable
from app.periodic import Periodic


class LeaseKeeper(Periodic):
    """Renews ``store``'s claims every ``lease / 3`` seconds in a thread of its own."""

    def __init__(self, store: IdempotencyStore, lease: float) -> None:
        super().__init__(
            "stepd-leases",
            lease / 3,
            store.renew,
            "idempotency leases not renewed",
            expected=(StoreUnavailable,),
        )
