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
