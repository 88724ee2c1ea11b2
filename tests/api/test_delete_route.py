"""``POST /steps/delete`` through HTTP: the contract callers rely on."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def test_absent_target_is_success(client: TestClient) -> None:
    response = client.post("/steps/delete", json={"path": "gone"})
    assert response.status_code == 200
    assert response.json() == {
        "apiVersion": "v1",
        "kind": "DeleteResult",
        "status": "Succeeded",
        "deleted": [],
        "absent": ["gone"],
    }


def test_strict_absent_target_is_404_problem(client: TestClient) -> None:
    response = client.post("/steps/delete", json={"path": "gone", "strict": True})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert {"type", "title", "detail"} <= body.keys()


def test_deletes_directory_with_contents(client: TestClient, root_dir: Path) -> None:
    (root_dir / "out" / "nested").mkdir(parents=True)
    (root_dir / "out" / "nested" / "file.yaml").write_text("x")
    response = client.post("/steps/delete", json={"path": "./out/"})
    assert response.status_code == 200
    assert response.json()["deleted"] == ["out"]
    assert not (root_dir / "out").exists()


def test_v1alpha1_request_answers_in_v1alpha1(client: TestClient, root_dir: Path) -> None:
    (root_dir / "a.txt").write_text("x")
    response = client.post("/steps/delete", json={"apiVersion": "v1alpha1", "path": "a.txt"})
    assert response.status_code == 200
    assert response.json()["apiVersion"] == "v1alpha1"
    assert response.json()["deleted"] == ["a.txt"]


def test_unknown_version_names_supported_ones(client: TestClient) -> None:
    response = client.post("/steps/delete", json={"apiVersion": "v2", "path": "x"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert "v1, v1alpha1" in response.json()["detail"]


def test_escape_is_refused(client: TestClient, root_dir: Path) -> None:
    response = client.post("/steps/delete", json={"path": "../outside/precious.txt"})
    assert response.status_code == 422
    assert response.json()["code"] == "path_outside_workspace"
    assert (root_dir.parent / "outside" / "precious.txt").exists()
