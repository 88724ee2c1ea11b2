"""kill -9 while the purger is freeing a big tree: the next start resumes the purge and
empties the trash, and nothing else (the rest of the workspace, outside the root) changes.

The first server is slowed down on purpose (a tiny work slice, a long pause whenever
requests were served, and a steady trickle of requests), so that the kill surely lands
while the trash still holds most of the tree; the second runs with the defaults.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tests.support.server import Server, clean_environment, serve, stepd_command
from tests.support.snapshot import ANY_MTIME, matches, snapshot, without
from tests.support.trash import NOTHING_LEFT, left, trash_emptied
from tests.support.trees import build_tree

SLOW_PURGE = {"STEPD_PURGE_SLICE": "0.001", "STEPD_PURGE_PAUSE": "0.5"}


def _count(path: Path) -> int:
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(path))


def test_purge_resumes_after_kill9(root_dir: Path) -> None:
    build_tree(root_dir / "ws" / "big", dirs=40, subdirs=5, files=25)  # ~6 000 entries
    build_tree(root_dir / "ws" / "kept", dirs=2, subdirs=2, files=3)
    (root_dir / "other").mkdir()
    (root_dir / "other" / "file").write_text("other")
    expected = without(snapshot(root_dir, mtimes=True), ["ws/big"])
    expected["."] = (*expected["."][:-1], ANY_MTIME)  # the root gains .stepd
    outside = snapshot(root_dir.parent / "outside", mtimes=True)
    trash = root_dir / ".stepd" / "trash"

    server = Server.start(stepd_command(root_dir), env=clean_environment(SLOW_PURGE))
    stop_trickle = threading.Event()
    try:
        with server.client() as client:
            answer = client.post("/steps/delete", json={"workspace": "ws", "path": "big"})
            assert answer.status_code == 200, answer.text

            def trickle() -> None:
                while not stop_trickle.wait(0.05):
                    client.get("/healthz")

            feeder = threading.Thread(target=trickle)
            feeder.start()
            try:
                assert client.get("/readyz").json()["purgeBacklog"]["entries"] == 1
                assert not (root_dir / "ws" / "big").exists()
                held = _count(trash)
            finally:
                stop_trickle.set()
                feeder.join()
        server.kill()
    finally:
        server.stop()
    assert held > 1000, "the purge was not under way when the server was killed"
    assert _count(trash) > 0

    with serve(root_dir) as server:
        assert trash_emptied(root_dir)
        with server.client() as client:
            backlog = client.get("/readyz").json()["purgeBacklog"]
    assert left(backlog) == NOTHING_LEFT
    after = {k: v for k, v in snapshot(root_dir, mtimes=True).items() if not k.startswith(".stepd")}
    assert matches(after, expected)
    assert snapshot(root_dir.parent / "outside", mtimes=True) == outside
