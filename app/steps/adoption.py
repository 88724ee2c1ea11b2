"""``Adopter``: looks, at start-up and every ``interval`` seconds after, for the staging
areas of instances that are gone, and recovers what they left (``Staging.adopt``), in a
daemon thread.

An instance killed while another keeps serving the root is not restarted under the same
id in every deployment (a pod of a Deployment comes back with another name): its
unfinished atomic batch must still be rolled back, and its trash freed, by a live one.
A failed look (a read-only or full root) is logged and tried again at the next tick.
"""

from __future__ import annotations

from app.periodic import Periodic
from app.sandbox.errors import SandboxError
from app.steps.area import Unusable
from app.steps.staging import Staging


class Adopter(Periodic):
    """Runs ``staging.adopt()`` at once, then every ``interval`` seconds."""

    def __init__(self, staging: Staging, interval: float) -> None:
        super().__init__(
            "stepd-adopter",
            interval,
            staging.adopt,
            "staging: cannot adopt what gone instances left",
            expected=(SandboxError, Unusable),
            at_start=True,
        )
