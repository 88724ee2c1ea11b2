"""The root's trash, as the background purger leaves it."""

from __future__ import annotations

import os
import time
from pathlib import Path


def trash_emptied(root: Path, timeout: float = 60) -> bool:
    """Whether the background purger empties ``root``'s trash within ``timeout`` seconds
    (a bound that only keeps a broken purger from hanging the test)."""
    trash = root / ".stepd" / "trash"
    deadline = time.monotonic() + timeout
    while os.listdir(trash):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ``purgeBacklog`` in /readyz when nothing was ever detached.
NO_BACKLOG = {
    "entries": 0,
    "bytes": 0,
    "stuck": 0,
    "oldestSeconds": 0,
    "files": 0,
    "freedEntries": 0,
    "freedFiles": 0,
    "freedBytes": 0,
    "filesPerSecond": 0,
}


def left(backlog: dict[str, object]) -> dict[str, object]:
    """What ``backlog`` (``purgeBacklog`` in /readyz) says is left to free."""
    return {key: backlog[key] for key in ("entries", "bytes", "stuck", "oldestSeconds", "files")}


NOTHING_LEFT = left(NO_BACKLOG)
