"""``/healthz`` (alive) and ``/readyz`` (the root is a writable directory)."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient


def test_healthz_is_200(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_on_a_writable_root(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "purgeBacklog": {"entries": 0, "bytes": 0, "stuck": 0, "oldestSeconds": 0},
    }


def test_readyz_is_503_once_the_root_is_removed(client: TestClient, root_dir: Path) -> None:
    shutil.rmtree(root_dir)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_ready"
    assert client.get("/healthz").status_code == 200
