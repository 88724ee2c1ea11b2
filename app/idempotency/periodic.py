"""``Periodic``: a store's upkeep, done every so often in a daemon thread of its own.

A run that fails (the store is unavailable) is logged and tried again at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.idempotency.store import StoreUnavailable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``action`` every ``interval`` seconds in thread ``name`` until stopped;
    ``failure`` opens the line logged when a call fails."""

    def __init__(
        self, name: str, interval: float, action: Callable[[], object], failure: str
    ) -> None:
        self.interval = interval
        self._action = action
        self._failure = failure
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop (at shutdown, once no request runs)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self._action()
            except StoreUnavailable as exc:
                log.warning("%s: %s", self._failure, exc.message)
            except Exception:
                log.exception("%s: unexpected error", self._failure)
