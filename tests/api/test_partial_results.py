"""A step that fails partway says what it had deleted: in the step result of a batch's
problem, and in ``/steps/delete``'s problem (``deleted``), also when the answer is
replayed for an Idempotency-Key. And what the purger cannot free is counted in
``/readyz`` and the metrics, and freed without a restart once it can be."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.api.test_metrics import sample
from tests.support.immutable import immutable, set_immutable
from tests.support.problems import assert_problem
from tests.support.snapshot import snapshot


@pytest.fixture(params=["background", "inline"])
def purge_client(request: pytest.FixtureRequest, root_dir: Path) -> Iterator[TestClient]:
    settings = Settings(workspace_root=root_dir, purge=request.param)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def sealed(root_dir: Path) -> Iterator[Path]:
    """``dA`` and ``dB``, each a directory with a file; ``dB`` immutable (and so is the
    file ``fC``)."""
    for name in ("dA", "dB"):
        (root_dir / name).mkdir()
        (root_dir / name / "f").write_text(name)
    (root_dir / "fC").write_text("C")
    with immutable(root_dir / "dB"), immutable(root_dir / "fC"):
        yield root_dir


def test_a_batch_step_failing_partway_lists_what_it_deleted(
    purge_client: TestClient, sealed: Path
) -> None:
    steps = [{"uses": "delete", "config": {"paths": ["dA", "dB"]}}]
    headers = {"Idempotency-Key": "partial-batch"}
    response = purge_client.post("/steps/batch", json={"steps": steps}, headers=headers)
    body = assert_problem(response, 403, "permission_denied")
    assert body["steps"][0]["deleted"] == ["dA"]
    assert body["steps"][0]["status"] == "Failed"
    assert body["rolledBack"] is False
    assert not (sealed / "dA").exists()
    again = purge_client.post("/steps/batch", json={"steps": steps}, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == body


@pytest.mark.parametrize("paths", [["dA", "dB"], ["dA", "fC"]])
def test_a_delete_failing_partway_lists_what_it_deleted(
    purge_client: TestClient, sealed: Path, paths: list[str]
) -> None:
    headers = {"Idempotency-Key": f"partial-{paths[1]}"}
    response = purge_client.post("/steps/delete", json={"paths": paths}, headers=headers)
    body = assert_problem(response, 403, "permission_denied")
    assert body["deleted"] == ["dA"]
    assert body["path"] == paths[1]
    assert not (sealed / "dA").exists()
    again = purge_client.post("/steps/delete", json={"paths": paths}, headers=headers)
    assert again.json() == body


def test_a_failure_before_deleting_lists_nothing_deleted(
    purge_client: TestClient, sealed: Path
) -> None:
    response = purge_client.post("/steps/delete", json={"path": "fC"})
    assert assert_problem(response, 403, "permission_denied")["deleted"] == []


def test_what_is_listed_is_exactly_what_is_gone(purge_client: TestClient, sealed: Path) -> None:
    """Whatever order the removal takes (detached directories first, in the background
    mode), the answer lists exactly the targets that are gone."""
    response = purge_client.post("/steps/delete", json={"paths": ["fC", "dA", "dB"]})
    deleted = assert_problem(response, 403, "permission_denied")["deleted"]
    assert deleted == [name for name in ("fC", "dA", "dB") if not (sealed / name).exists()]


def test_an_atomic_step_failing_partway_is_rolled_back(
    purge_client: TestClient, sealed: Path
) -> None:
    before = snapshot(sealed, exclude=(sealed / ".stepd",), mtimes=True)
    steps = [{"uses": "delete", "config": {"paths": ["dA", "dB"]}}]
    response = purge_client.post("/steps/batch", json={"atomic": True, "steps": steps})
    body = assert_problem(response, 403, "permission_denied")
    assert body["steps"][0]["deleted"] == ["dA"]  # what it did before it was undone
    assert body["rolledBack"] is True
    assert snapshot(sealed, exclude=(sealed / ".stepd",), mtimes=True) == before


def _wait(predicate: object, timeout: float = 60) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_what_the_purger_cannot_free_is_counted_then_freed_without_a_restart(
    client: TestClient, root_dir: Path
) -> None:
    (root_dir / "tree" / "sealed").mkdir(parents=True)
    (root_dir / "tree" / "sealed" / "f").write_text("cannot go")
    trash = root_dir / ".stepd" / "trash"
    with immutable(root_dir / "tree" / "sealed"):
        assert client.post("/steps/delete", json={"path": "tree"}).status_code == 200
        [held] = list(trash.rglob("sealed"))
        assert _wait(lambda: client.get("/readyz").json()["purgeBacklog"]["stuck"] == 1)
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded"
        assert "cannot free 1 trash entries" in ready["detail"]
        assert ready["purgeBacklog"]["entries"] == 1
        assert sample(client, "stepd_purge_backlog_entries") == 1
        assert sample(client, "stepd_purge_backlog_stuck_entries") == 1
        oldest = sample(client, "stepd_purge_backlog_oldest_seconds")
        assert oldest is not None
        assert oldest > 0
        set_immutable(held, False)
        assert _wait(lambda: client.get("/readyz").json()["purgeBacklog"]["entries"] == 0)
    assert list(trash.iterdir()) == []
    assert client.get("/readyz").json()["status"] == "ready"
    assert sample(client, "stepd_purge_backlog_stuck_entries") == 0
