"""The store ``STEPD_IDEMPOTENCY_STORE`` chooses. Over PostgreSQL: keys replayed from the
database, and a database that does not answer costing keyed requests a clear 503 (they do
not run), plain deletes nothing, and readiness a ``degraded``; a ``sqlite:///`` URL names
the state directory; the start-up line never shows the database's password."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.cli import startup_line
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


def test_a_sqlite_url_names_the_state_directory(root_dir: Path, tmp_path: Path) -> None:
    settings = Settings(workspace_root=root_dir, idempotency_store=f"sqlite://{tmp_path}/records")
    with TestClient(create_app(settings)) as client:
        client.post("/steps/delete", json={"path": "a"}, headers={"Idempotency-Key": "k"})
    assert (tmp_path / "records" / "idempotency.sqlite3").is_file()
    assert not (root_dir / ".stepd" / "state").exists()


def test_the_start_up_line_names_the_database_without_its_password(root_dir: Path) -> None:
    url = "postgresql://stepd:s3cret@db.example:5432/stepd?sslmode=require"
    _, fields = startup_line(Settings(workspace_root=root_dir, idempotency_store=url), 8080)
    assert (
        fields["store"] == "postgresql postgresql://stepd:***@db.example:5432/stepd?sslmode=require"
    )


@pytest.mark.parametrize("url", ["mysql://db/x", "sqlite:/relative", "postgresql"])
def test_a_store_url_of_another_kind_is_refused(root_dir: Path, url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(workspace_root=root_dir, idempotency_store=url)
