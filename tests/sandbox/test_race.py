"""A directory swapped for a symlink leading out, while deletes run through it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from app.sandbox import Root
from app.sandbox.errors import SandboxError
from tests.support.snapshot import snapshot

# How long the swapping goes on: long enough for many thousand interleavings, not a limit
# anything is measured against.
RACE_SECONDS = 2.0


def _refill(dir_fd: int) -> None:
    """Put ``precious.txt`` and ``sub/f`` back into the real directory, wherever it is."""
    os.close(os.open("precious.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dir_fd))
    with contextlib.suppress(FileExistsError):
        os.mkdir("sub", dir_fd=dir_fd)
    sub = os.open("sub", os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    try:
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=sub))
    finally:
        os.close(sub)


@pytest.mark.parametrize("link_target", ["../outside", "absolute"])
def test_a_directory_swapped_for_an_outside_symlink_never_leaks(
    root: Root, root_dir: Path, link_target: str
) -> None:
    outside = root_dir.parent / "outside"
    (outside / "sub").mkdir()
    (outside / "sub" / "f").write_text("keep me")
    before = snapshot(outside)

    swapped, parked_dir, parked_link = root_dir / "d", root_dir / "d.dir", root_dir / "d.link"
    swapped.mkdir()
    parked_link.symlink_to(outside if link_target == "absolute" else link_target)
    real_fd = os.open(swapped, os.O_RDONLY | os.O_DIRECTORY)
    stop = threading.Event()
    failures: list[BaseException] = []

    def swap() -> None:
        try:
            while not stop.is_set():
                os.rename(swapped, parked_dir)
                os.rename(parked_link, swapped)
                os.rename(swapped, parked_link)
                os.rename(parked_dir, swapped)
        except BaseException as exc:
            failures.append(exc)

    swapper = threading.Thread(target=swap)
    swapper.start()
    removed = 0
    try:
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline and not failures:
            _refill(real_fd)
            for path in ("d/precious.txt", "d/sub", "d/sub/f", "./d/sub/"):
                with contextlib.suppress(SandboxError):
                    removed += root.remove(path)
            with contextlib.suppress(SandboxError):
                for match in root.glob("d/*"):
                    with contextlib.suppress(SandboxError):
                        removed += root.remove(match)
    finally:
        stop.set()
        swapper.join()
        os.close(real_fd)

    assert failures == []
    assert removed > 0, "the deletes never reached the real directory"
    assert snapshot(outside) == before
