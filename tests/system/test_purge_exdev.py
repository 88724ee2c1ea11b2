"""Where ``.stepd`` is a mount of its own, stepd refuses it as its area (it would be
another filesystem, and no longer the root's): a plain delete then deletes in place, and
still succeeds.

Same set-up as ``test_atomic_unsupported``: a tmpfs on ``.stepd`` in a private mount
namespace, so it needs ``unshare`` and the right to mount, and skips otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import Server, stepd_command
from tests.support.trash import NO_BACKLOG
from tests.system.test_atomic_unsupported import MOUNT_STAGING, _can_mount


def test_delete_across_filesystems_deletes_in_place(root_dir: Path, tmp_path: Path) -> None:
    if not _can_mount(tmp_path / "probe"):
        pytest.skip("cannot mount a tmpfs in a private mount namespace here")
    (root_dir / "ws" / "out" / "sub").mkdir(parents=True)
    (root_dir / "ws" / "out" / "sub" / "f").write_text("f")
    (root_dir / "ws" / "file").write_text("x")
    (root_dir / "ws" / "keep").write_text("k")
    unshare = ["unshare", "-m", "sh", "-c", MOUNT_STAGING, str(root_dir)]
    server = Server.start([*unshare, *stepd_command(root_dir)])
    try:
        with server.client() as client:
            body = {"workspace": "ws", "paths": ["out", "file"]}
            answer = client.post("/steps/delete", json=body)
            backlog = client.get("/readyz").json()["purgeBacklog"]
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"] == ["out", "file"]
    assert [p.name for p in (root_dir / "ws").iterdir()] == ["keep"]
    # Nothing was detached: the trash (on the tmpfs) got no entry to purge.
    assert backlog == NO_BACKLOG
