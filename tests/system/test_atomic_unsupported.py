"""An atomic batch whose staging area is on a filesystem of its own (``.stepd`` is a mount
point, which stepd refuses as its area) fails cleanly (409 ``atomic_unsupported``) and
deletes nothing in place.

The staging area is put on a tmpfs of its own, in a private mount namespace, so this
needs ``unshare`` and the right to mount (root, or a user namespace); it skips otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server, stepd_command

MOUNT_STAGING = 'mkdir -p "$0/.stepd" && mount -t tmpfs stepd-test "$0/.stepd" && exec "$@"'


def _can_mount(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", MOUNT_STAGING.replace('exec "$@"', "true"), str(tmp_path)],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def test_atomic_batch_across_filesystems_deletes_nothing(root_dir: Path, tmp_path: Path) -> None:
    if not _can_mount(tmp_path / "probe"):
        pytest.skip("cannot mount a tmpfs in a private mount namespace here")
    (root_dir / "out").mkdir()
    (root_dir / "out" / "f").write_text("f")
    (root_dir / "keep").write_text("k")
    unshare = ["unshare", "-m", "sh", "-c", MOUNT_STAGING, str(root_dir)]
    server = Server.start([*unshare, *stepd_command(root_dir)])
    try:
        steps = [{"uses": "delete", "config": {"path": p}} for p in ("keep", "out")]
        atomic = httpx.post(server.url("/steps/batch"), json={"atomic": True, "steps": steps})
        plain = httpx.post(server.url("/steps/batch"), json={"steps": steps[:1]})
    finally:
        server.stop()
    assert atomic.status_code == 409
    assert atomic.json()["code"] == "atomic_unsupported"
    assert atomic.json()["rolledBack"] is True
    assert (root_dir / "out" / "f").read_text() == "f"
    # A plain (non-atomic) batch still deletes in place.
    assert plain.status_code == 200
    assert not (root_dir / "keep").exists()
