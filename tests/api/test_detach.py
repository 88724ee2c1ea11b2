"""Deletes through HTTP detach their targets into the trash before answering; the purger
frees them after, shows its backlog in /readyz and /metrics, and resumes at the next
start. ``STEPD_PURGE=inline`` deletes in place instead."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.steps.staging import DETACH_MIN_BYTES
from tests.api.test_metrics import sample
from tests.support.trash import NOTHING_LEFT, left


def _tree(root_dir: Path) -> None:
    for d in range(3):
        (root_dir / "ws" / "out" / f"d{d}").mkdir(parents=True)
        for f in range(5):
            (root_dir / "ws" / "out" / f"d{d}" / f"f{f}").write_text("data")
    (root_dir / "ws" / "keep.txt").write_text("keep")
    (root_dir / "ws" / "small.txt").write_text("12345")
    (root_dir / "ws" / "big.bin").write_bytes(b"b" * DETACH_MIN_BYTES)


def _trash(root_dir: Path) -> list[str]:
    return os.listdir(root_dir / ".stepd" / "trash")


def test_delete_detaches_before_answering_and_purges_after(root_dir: Path) -> None:
    _tree(root_dir)
    with TestClient(create_app(Settings(workspace_root=root_dir))) as client:
        purger = client.app.state.purger  # type: ignore[attr-defined]
        purger.stop()  # hold the purge, to see what is waiting for it
        response = client.post("/steps/delete", json={"workspace": "ws", "path": "out"})
        assert response.status_code == 200
        assert response.json()["deleted"] == ["out"]
        assert sorted(os.listdir(root_dir / "ws")) == ["big.bin", "keep.txt", "small.txt"]
        [held] = _trash(root_dir)
        assert (root_dir / ".stepd" / "trash" / held / "0" / "d2" / "f4").read_text() == "data"
        ready = client.get("/readyz").json()
        assert left(ready["purgeBacklog"]) | {"oldestSeconds": 0} == {
            "entries": 1,
            "bytes": None,
            "stuck": 0,
            "oldestSeconds": 0,
            "files": None,
        }
        assert ready["purgeBacklog"]["oldestSeconds"] > 0
        assert sample(client, "stepd_purge_backlog_entries") == 1
    # The next start takes over what the trash holds, in the background.
    with TestClient(create_app(Settings(workspace_root=root_dir))) as client:
        assert client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
        assert _trash(root_dir) == []
        backlog = client.get("/readyz").json()["purgeBacklog"]
        assert left(backlog) == NOTHING_LEFT
        # out, its 3 directories and their 15 files
        assert (backlog["freedEntries"], backlog["freedFiles"]) == (1, 19)
        assert sample(client, "stepd_purge_freed_files_total") == 19
    assert sorted(os.listdir(root_dir / "ws")) == ["big.bin", "keep.txt", "small.txt"]


def test_backlog_counts_the_bytes_of_detached_files(root_dir: Path) -> None:
    _tree(root_dir)
    with TestClient(create_app(Settings(workspace_root=root_dir))) as client:
        client.app.state.purger.stop()  # type: ignore[attr-defined]
        body = {"workspace": "ws", "paths": ["big.bin", "small.txt"]}
        assert client.post("/steps/delete", json=body).status_code == 200
        backlog = client.get("/readyz").json()["purgeBacklog"]
        assert (backlog["entries"], backlog["bytes"]) == (1, DETACH_MIN_BYTES)
        assert sample(client, "stepd_purge_backlog_bytes") == DETACH_MIN_BYTES
        assert sorted(os.listdir(root_dir / "ws")) == ["keep.txt", "out"]


def test_small_files_and_symlinks_are_unlinked_in_place(root_dir: Path) -> None:
    _tree(root_dir)
    (root_dir / "ws" / "link").symlink_to("out")
    with TestClient(create_app(Settings(workspace_root=root_dir))) as client:
        client.app.state.purger.stop()  # type: ignore[attr-defined]
        body = {"workspace": "ws", "paths": ["small.txt", "link"]}
        assert client.post("/steps/delete", json=body).status_code == 200
        assert _trash(root_dir) == []
        assert sorted(os.listdir(root_dir / "ws")) == ["big.bin", "keep.txt", "out"]


def test_an_absent_target_leaves_nothing_in_the_trash(client: TestClient, root_dir: Path) -> None:
    assert client.post("/steps/delete", json={"path": "gone"}).status_code == 200
    assert _trash(root_dir) == []


def test_a_batch_detaches_every_step_into_one_trash_directory(root_dir: Path) -> None:
    _tree(root_dir)
    with TestClient(create_app(Settings(workspace_root=root_dir))) as client:
        client.app.state.purger.stop()  # type: ignore[attr-defined]
        steps = [{"uses": "delete", "config": {"path": p}} for p in ("out", "keep.txt")]
        steps.append({"uses": "delete", "config": {"path": "big.bin"}})
        response = client.post("/steps/batch", json={"workspace": "ws", "steps": steps})
        assert response.status_code == 200
        assert os.listdir(root_dir / "ws") == ["small.txt"]
        [held] = _trash(root_dir)  # one directory for the batch; keep.txt went in place
        assert sorted(os.listdir(root_dir / ".stepd" / "trash" / held)) == ["0", "1"]


def test_inline_mode_deletes_in_place(root_dir: Path) -> None:
    _tree(root_dir)
    settings = Settings(workspace_root=root_dir, purge="inline")
    with TestClient(create_app(settings)) as client:
        response = client.post("/steps/delete", json={"workspace": "ws", "path": "out"})
        assert response.status_code == 200
        assert _trash(root_dir) == []
        steps = [{"uses": "delete", "config": {"path": "keep.txt"}}]
        atomic = {"workspace": "ws", "atomic": True, "steps": steps}
        assert client.post("/steps/batch", json=atomic).status_code == 200
        assert _trash(root_dir) == []  # committed staging purged before the answer
        assert left(client.get("/readyz").json()["purgeBacklog"]) == NOTHING_LEFT
    assert sorted(os.listdir(root_dir / "ws")) == ["big.bin", "small.txt"]


def test_inline_mode_purges_leftovers_before_serving(root_dir: Path) -> None:
    (root_dir / ".stepd" / "trash" / "leftover" / "0").mkdir(parents=True)
    settings = Settings(workspace_root=root_dir, purge="inline")
    with TestClient(create_app(settings)):
        assert _trash(root_dir) == []
