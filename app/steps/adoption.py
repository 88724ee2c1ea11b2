"""``Adopter``: looks, at start-up and every ``interval`` seconds after, for the staging
areas of instances that are gone, and recovers what they left (``Staging.adopt``), in a
daemon thread.

An instance killed while another keeps serving the root is not restarted under the same
id in every deployment (a pod of a Deployment comes back with another name): its
unfinished atomic batch must still be rolled back, and its trash freed, by a live one.
A failed look (a read-only or full root) is logged and tried again at the next tick.
"""

from __future__ import annotations

import logging
import threading

from app.sandbox.errors import SandboxError
from app.steps.area import Unusable
from app.steps.staging import Staging

log = logging.getLogger(__name__)


class Adopter:
    """Runs ``staging.adopt()`` every ``interval`` seconds in a thread of its own."""

    def __init__(self, staging: Staging, interval: float) -> None:
        self.staging = staging
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepd-adopter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop between two looks; whether the thread has ended (it may still use the
        staging area's descriptors if not)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.staging.adopt()
            except (SandboxError, Unusable) as exc:
                log.warning("staging: cannot adopt what gone instances left: %s", exc)
            except Exception:
                log.exception("staging: adopting what gone instances left failed unexpectedly")
            self._stopping.wait(self.interval)
