"""``Periodic``: upkeep done every so often in a daemon thread of its own (lease renewal,
the idempotency store's sweep, adoption of what gone instances left).

A run that fails for an expected reason (the store or the filesystem unavailable for
now) is logged as a warning, any other failure with its traceback; either way it is tried
again at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``action`` every ``interval`` seconds (first at once if ``at_start``) in
    thread ``name`` until stopped; ``failure`` opens the line logged when a call fails,
    and ``expected`` are the exceptions logged without a traceback."""

    def __init__(
        self,
        name: str,
        interval: float,
        action: Callable[[], object],
        failure: str,
        *,
        expected: tuple[type[Exception], ...],
        at_start: bool = False,
    ) -> None:
        self.interval = interval
        self._action = action
        self._failure = failure
        self._expected = expected
        self._at_start = at_start
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop between two calls (at shutdown, once no request runs); whether the thread
        has ended (if not, it may still use what ``action`` uses)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._at_start:
            self._call()
        while not self._stopping.wait(self.interval):
            self._call()

    def _call(self) -> None:
        try:
            self._action()
        except self._expected as exc:
            log.warning("%s: %s", self._failure, exc)
        except Exception:
            log.exception("%s: unexpected error", self._failure)
