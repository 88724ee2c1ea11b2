"""The immutable attribute (``chattr +i``): what even root cannot unlink, rename or write.

We run as root, which ignores permission bits, so a refusal has to come from the
filesystem: an immutable file cannot be removed or renamed, and nothing can be added to or
removed from an immutable directory (ext4, xfs, btrfs, tmpfs). Where ``chattr`` is missing
or the filesystem has no such attribute, the test is skipped and says so.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def set_immutable(path: Path, on: bool) -> None:
    """Set (``on``) or clear the immutable attribute of ``path``."""
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


@contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """``path`` with the immutable attribute set for the block."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: cannot make a file immutable as root")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        if path.exists():  # not when the test moved it away and freed it itself
            set_immutable(path, False)
