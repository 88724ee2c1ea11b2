"""``Sweeper``: keeps the idempotency store bounded while this process runs.

Every ``SWEEP_SECONDS`` a daemon thread of its own (never the leases' thread: a long sweep
must not delay a renewal) calls ``IdempotencyStore.sweep``, which deletes the expired
records, evicts the oldest complete ones past the cap and gives the space back; each
sweep is reported (to the metrics). Between two sweeps the store may hold what was
claimed since the last one beyond the cap.
"""

from __future__ import annotations

from collections.abc import Callable

from app.idempotency.store import IdempotencyStore, StoreUnavailable, Sweep
from app.periodic import Periodic

SWEEP_SECONDS = 10.0


class Sweeper(Periodic):
    """Sweeps ``store`` every ``interval`` seconds and hands each ``Sweep`` to ``report``."""

    def __init__(
        self,
        store: IdempotencyStore,
        report: Callable[[Sweep], None],
        interval: float = SWEEP_SECONDS,
    ) -> None:
        super().__init__(
            "stepd-sweeper",
            interval,
            lambda: report(store.sweep()),
            "idempotency store not swept",
            expected=(StoreUnavailable,),
        )
