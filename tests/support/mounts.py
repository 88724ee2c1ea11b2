"""Mounts for tests (we run as root): every mount is undone when its block ends.

Where mounting is not permitted (no CAP_SYS_ADMIN, a locked-down container) the context
managers raise ``MountNotPermitted`` with the reason ``mount`` gave; tests turn that into
a skip that says why (``skip_if_not_permitted``), rather than passing without having tried.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class MountNotPermitted(Exception):
    """``mount`` failed here; the message is its reason."""


@contextmanager
def skip_if_not_permitted() -> Iterator[None]:
    """Skip the test, saying why, when a mount made in the block is not permitted."""
    try:
        yield
    except MountNotPermitted as refused:
        pytest.skip(f"mounting is not permitted here: {refused}")


def run_mount(*args: str) -> None:
    """Run ``mount`` with ``args``; ``MountNotPermitted`` when it fails."""
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MountNotPermitted(f"mount {' '.join(args)}: {done.stderr.strip()}")


def remount(target: Path, options: str) -> None:
    """Change the options of the mount at ``target`` (``ro``, ``rw``...; ``bind,ro`` for
    the bind mount alone, leaving the filesystem beneath it as it is)."""
    run_mount("-o", f"remount,{options}", str(target))


@contextmanager
def bind_mount(source: Path, target: Path) -> Iterator[Path]:
    """``source`` bind-mounted on ``target`` for the block."""
    run_mount("--bind", str(source), str(target))
    try:
        yield target
    finally:
        _unmount(target)


@contextmanager
def tmpfs(target: Path, options: str = "size=1m") -> Iterator[Path]:
    """A fresh tmpfs on ``target`` for the block."""
    run_mount("-t", "tmpfs", "-o", options, "tmpfs", str(target))
    try:
        yield target
    finally:
        _unmount(target)


def _unmount(target: Path) -> None:
    # A lazy unmount still detaches the tree if a server process holds a descriptor in it.
    if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(target)], check=True)
