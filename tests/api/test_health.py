"""``/healthz`` (alive) and ``/readyz`` (the root is a writable directory)."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from tests.support.trash import NO_BACKLOG, NOTHING_LEFT, left


def test_healthz_is_200(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_on_a_writable_root(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "purgeBacklog": NO_BACKLOG}


def test_readyz_reports_the_purge_progress(client: TestClient, root_dir: Path) -> None:
    for d in range(3):
        (root_dir / "tree" / f"d{d}").mkdir(parents=True)
        for f in range(4):
            (root_dir / "tree" / f"d{d}" / f"f{f}").write_text("data")
    assert client.post("/steps/delete", json={"path": "tree"}).status_code == 200
    assert client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
    backlog = client.get("/readyz").json()["purgeBacklog"]
    assert left(backlog) == NOTHING_LEFT
    # One entry: tree, 3 directories, 12 files; its size was unknown (a directory).
    assert (backlog["freedEntries"], backlog["freedFiles"], backlog["freedBytes"]) == (1, 16, 0)
    assert backlog["filesPerSecond"] > 0


def test_readyz_is_503_once_the_root_is_removed(client: TestClient, root_dir: Path) -> None:
    shutil.rmtree(root_dir)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_ready"
    assert client.get("/healthz").status_code == 200
