"""The service over a PostgreSQL idempotency store: keys replayed from the database, and
a database that does not answer costing keyed requests a clear 503 (they do not run),
plain deletes nothing, and readiness a ``degraded``."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.postgres import Postgres
from tests.support.server import free_port


def test_keys_are_replayed_from_the_database(root_dir: Path, postgres: Postgres) -> None:
    (root_dir / "a.txt").write_text("x")
    settings = Settings(workspace_root=root_dir, idempotency_store=postgres.database())
    with TestClient(create_app(settings)) as client:
        headers = {"Idempotency-Key": "k1"}
        first = client.post(
            "/steps/delete", json={"path": "a.txt", "strict": True}, headers=headers
        )
        (root_dir / "a.txt").write_text("recreated")
        again = client.post(
            "/steps/delete", json={"path": "a.txt", "strict": True}, headers=headers
        )
        ready = client.get("/readyz")
    assert first.status_code == 200
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == first.json()
    assert (root_dir / "a.txt").read_text() == "recreated"
    assert ready.json()["status"] == "ready"
    assert not (root_dir / ".stepd" / "state").exists()


def test_a_database_that_does_not_answer(root_dir: Path) -> None:
    (root_dir / "a.txt").write_text("x")
    settings = Settings(
        workspace_root=root_dir,
        idempotency_store=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        idempotency_store_timeout=0.3,
    )
    with TestClient(create_app(settings)) as client:
        keyed = client.post(
            "/steps/delete", json={"path": "a.txt"}, headers={"Idempotency-Key": "k"}
        )
        assert (root_dir / "a.txt").exists()
        plain = client.post("/steps/delete", json={"path": "a.txt"})
        ready = client.get("/readyz")
        metrics = client.get("/metrics").text
    assert keyed.status_code == 503
    assert keyed.json()["code"] == "store_unavailable"
    assert keyed.headers["Retry-After"] == "1"
    assert plain.status_code == 200
    assert not (root_dir / "a.txt").exists()
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert "Idempotency-Key unavailable (store_unavailable)" in ready.json()["detail"]
    assert (
        'stepd_idempotency_store_errors_total{code="store_unavailable",operation="claim"} 1.0'
        in metrics
    )
