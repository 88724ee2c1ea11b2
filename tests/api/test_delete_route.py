"""``POST /steps/delete`` through HTTP: the contract callers rely on."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def post(client: TestClient, body: dict[str, object]) -> dict[str, object]:
    response = client.post("/steps/delete", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    result: dict[str, object] = response.json()
    return result


def test_a_symlink_is_removed_as_a_link_even_with_a_trailing_slash(
    client: TestClient, root_dir: Path
) -> None:
    (root_dir / "target").mkdir()
    (root_dir / "target" / "f").write_text("x")
    (root_dir / "link").symlink_to("target")
    assert post(client, {"path": "link/"})["deleted"] == ["link"]
    assert not (root_dir / "link").is_symlink()
    assert (root_dir / "target" / "f").exists()


@pytest.mark.parametrize("path", ["gone", "no_such_dir/child.txt", "plain.txt/child"])
def test_missing_targets_and_parents_are_absent(
    client: TestClient, root_dir: Path, path: str
) -> None:
    (root_dir / "plain.txt").write_text("x")
    assert post(client, {"path": path}) == {
        "apiVersion": "v1",
        "kind": "DeleteResult",
        "status": "Succeeded",
        "deleted": [],
        "absent": [path],
    }


def test_a_refused_entry_deletes_nothing(client: TestClient, root_dir: Path) -> None:
    (root_dir / "a").write_text("x")
    response = client.post("/steps/delete", json={"paths": ["a", "../x"]})
    assert response.status_code == 422
    assert (root_dir / "a").exists()


def test_two_spellings_are_deleted_once(client: TestClient, root_dir: Path) -> None:
    (root_dir / "a").mkdir()
    assert post(client, {"paths": ["a", "./a/", "a/x"]}) == {
        "apiVersion": "v1",
        "kind": "DeleteResult",
        "status": "Succeeded",
        "deleted": ["a"],
        "absent": ["a/x"],
    }


def test_globs_delete_top_most_matches(client: TestClient, root_dir: Path) -> None:
    for name in ("charts/x/values-dev.yaml", "charts/y/values-dev.yaml", "tmp/a/b", ".env"):
        (root_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (root_dir / name).write_text("x")
    result = post(
        client,
        {"paths": ["charts/*/values-dev.yaml", "tmp/**", "*env", "nope/*"], "pathsAreGlobs": True},
    )
    assert result["deleted"] == [
        "charts/x/values-dev.yaml",
        "charts/y/values-dev.yaml",
        "tmp",
        ".env",
    ]
    assert result["absent"] == ["nope/*"]


def test_a_glob_matching_nothing_is_404_when_strict(client: TestClient, root_dir: Path) -> None:
    (root_dir / "a.txt").write_text("x")
    response = client.post(
        "/steps/delete", json={"paths": ["*.txt", "*.md"], "pathsAreGlobs": True, "strict": True}
    )
    assert response.status_code == 404
    assert response.json()["missing"] == ["*.md"]
    assert (root_dir / "a.txt").exists()


def test_without_globs_metacharacters_are_literal(client: TestClient, root_dir: Path) -> None:
    (root_dir / "a[1].txt").write_text("x")
    (root_dir / "a1.txt").write_text("x")
    assert post(client, {"path": "a[1].txt"})["deleted"] == ["a[1].txt"]
    assert (root_dir / "a1.txt").exists()


def test_a_workspace_confines_the_step(client: TestClient, root_dir: Path) -> None:
    (root_dir / "promo-42" / "out").mkdir(parents=True)
    (root_dir / "out").mkdir()
    result = post(client, {"workspace": "promo-42", "path": "out"})
    assert result["deleted"] == ["out"]
    assert (root_dir / "out").is_dir()


def test_an_absent_workspace_makes_everything_absent(client: TestClient) -> None:
    result = post(client, {"apiVersion": "v1alpha1", "workspace": "nope", "path": "./x/"})
    assert result == {
        "apiVersion": "v1alpha1",
        "kind": "DeleteResult",
        "status": "Succeeded",
        "deleted": [],
        "absent": ["x"],
    }


def test_the_reserved_area_is_unreachable(client: TestClient, root_dir: Path) -> None:
    assert (root_dir / ".stepd").is_dir(), "start-up creates the private area"
    (root_dir / "l").symlink_to(".")
    for path in (".stepd", "l/.stepd", ".stepd/x"):
        response = client.post("/steps/delete", json={"path": path})
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_path"
    result = post(client, {"paths": ["*", ".stepd/**", "**/.stepd"], "pathsAreGlobs": True})
    assert result["deleted"] == ["l"]
    assert (root_dir / ".stepd").is_dir()
