"""``POST /steps/batch`` through HTTP: order, continueOnError, atomic rollback, validation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.snapshot import snapshot


def _delete(path: str, **extra: Any) -> dict[str, Any]:
    config = {"path": path, **{k: v for k, v in extra.items() if k == "strict"}}
    step: dict[str, Any] = {"uses": "delete", "config": config}
    step.update({k: v for k, v in extra.items() if k != "strict"})
    return step


@pytest.fixture
def tree(root_dir: Path) -> Path:
    """A workspace ``ws`` with a directory, files of various modes and symlinks."""
    ws = root_dir / "ws"
    (ws / "out" / "nested").mkdir(parents=True)
    (ws / "out" / "nested" / "a.yaml").write_text("a")
    (ws / "exec.sh").write_text("#!/bin/sh\n")
    (ws / "exec.sh").chmod(0o751)
    (ws / "keep.txt").write_text("keep")
    (ws / "link").symlink_to("out/nested")
    (ws / "dangling").symlink_to("nowhere")
    for i, path in enumerate(sorted(ws.rglob("*"), reverse=True)):
        os.utime(path, ns=(10**9 * i, 10**9 * i), follow_symlinks=False)
    os.utime(ws, ns=(5, 5))
    return ws


def test_success_lists_every_step(client: TestClient, tree: Path) -> None:
    body = {"workspace": "ws", "steps": [_delete("out", **{"as": "clean-out"}), _delete("gone")]}
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "apiVersion": "v1",
        "kind": "BatchResult",
        "status": "Succeeded",
        "rolledBack": False,
        "steps": [
            {
                "as": "clean-out",
                "uses": "delete",
                "status": "Succeeded",
                "deleted": ["out"],
                "absent": [],
            },
            {
                "as": "step-1",
                "uses": "delete",
                "status": "Succeeded",
                "deleted": [],
                "absent": ["gone"],
            },
        ],
    }
    assert not (tree / "out").exists()


def test_steps_run_in_order(client: TestClient, tree: Path) -> None:
    body = {"workspace": "ws", "steps": [_delete("out"), _delete("out/nested/a.yaml")]}
    steps = client.post("/steps/batch", json=body).json()["steps"]
    assert [s["deleted"] for s in steps] == [["out"], []]
    assert steps[1]["absent"] == ["out/nested/a.yaml"]


def test_failure_stops_batch_and_skips_the_rest(client: TestClient, tree: Path) -> None:
    body = {
        "workspace": "ws",
        "steps": [
            _delete("keep.txt"),
            _delete("nope", strict=True, **{"as": "must"}),
            _delete("exec.sh"),
        ],
    }
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "not_found"
    assert problem["failedStep"] == "must"
    assert problem["rolledBack"] is False
    assert [s["status"] for s in problem["steps"]] == ["Succeeded", "Failed", "Skipped"]
    assert problem["steps"][1]["error"]["code"] == "not_found"
    assert not (tree / "keep.txt").exists()
    assert (tree / "exec.sh").exists()


def test_continue_on_error_records_and_goes_on(client: TestClient, tree: Path) -> None:
    body = {
        "workspace": "ws",
        "steps": [_delete("nope", strict=True, continueOnError=True), _delete("keep.txt")],
    }
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 200
    assert [s["status"] for s in response.json()["steps"]] == ["Failed", "Succeeded"]
    assert not (tree / "keep.txt").exists()


def test_atomic_failure_restores_workspace_exactly(client: TestClient, tree: Path) -> None:
    before = snapshot(tree, mtimes=True)
    body = {
        "workspace": "ws",
        "atomic": True,
        "steps": [
            _delete("out"),
            _delete("link"),
            _delete("dangling"),
            _delete("exec.sh"),
            _delete("out-too", strict=True),
        ],
    }
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 404
    problem = response.json()
    assert problem["rolledBack"] is True
    assert problem["failedStep"] == "step-4"
    assert [s["deleted"] for s in problem["steps"][:4]] == [
        ["out"],
        ["link"],
        ["dangling"],
        ["exec.sh"],
    ]
    assert snapshot(tree, mtimes=True) == before  # contents, modes, mtimes (parents too), symlinks
    assert _trash_once_purged(client, tree.parent) == []


def test_atomic_success_deletes_and_empties_staging(client: TestClient, tree: Path) -> None:
    body = {"workspace": "ws", "atomic": True, "steps": [_delete("out"), _delete("link")]}
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 200
    assert sorted(os.listdir(tree)) == ["dangling", "exec.sh", "keep.txt"]
    assert _trash_once_purged(client, tree.parent) == []


def test_atomic_failure_of_a_refused_path_rolls_back(client: TestClient, tree: Path) -> None:
    (tree / "escape").symlink_to("../../outside")
    before = snapshot(tree, mtimes=True)
    body = {
        "workspace": "ws",
        "atomic": True,
        "steps": [_delete("keep.txt"), _delete("escape/precious.txt")],
    }
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "path_outside_workspace"
    assert snapshot(tree, mtimes=True) == before
    assert (tree.parent.parent / "outside" / "precious.txt").exists()


def test_invalid_step_names_it_and_nothing_runs(client: TestClient, tree: Path) -> None:
    body = {
        "workspace": "ws",
        "steps": [
            _delete("keep.txt"),
            _delete("a"),
            _delete("b"),
            {"uses": "delete", "config": {"paths": ["ok", "/etc/passwd"]}},
        ],
    }
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert [e["field"] for e in problem["errors"]] == ["steps[3].config.paths[1]"]
    assert (tree / "keep.txt").exists()


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"uses": "delete", "config": {"path": "../../x"}}, "steps[1].config.path"),
        ({"uses": "delete", "config": {"path": "x", "bogus": 1}}, "steps[1].config.bogus"),
        (
            {"uses": "delete", "config": {"paths": ["{"], "pathsAreGlobs": True}},
            "steps[1].config.paths[0]",
        ),
        ({"uses": "delete", "config": {}}, "steps[1].config"),
        ({"uses": "copy", "config": {}}, "steps[1]"),
        ({"uses": "delete", "as": "bad name", "config": {"path": "x"}}, "steps[1].as"),
    ],
)
def test_each_invalid_step_is_named(client: TestClient, step: dict[str, Any], field: str) -> None:
    response = client.post("/steps/batch", json={"steps": [_delete("x"), step]})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_aliases_must_be_unique_defaults_included(client: TestClient) -> None:
    body = {"steps": [_delete("a", **{"as": "step-1"}), _delete("b")]}
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 422
    assert "steps[1].as 'step-1'" in response.json()["detail"]


def test_v1alpha1_envelope_uses_v1alpha1_config(client: TestClient, tree: Path) -> None:
    body = {"apiVersion": "v1alpha1", "workspace": "ws", "steps": [_delete("keep.txt")]}
    response = client.post("/steps/batch", json=body)
    assert response.status_code == 200
    assert response.json()["apiVersion"] == "v1alpha1"
    paths_body = {
        "apiVersion": "v1alpha1",
        "steps": [{"uses": "delete", "config": {"paths": ["x"]}}],
    }
    assert client.post("/steps/batch", json=paths_body).status_code == 422


def test_empty_batch_is_refused(client: TestClient) -> None:
    assert client.post("/steps/batch", json={"steps": []}).status_code == 422


@pytest.fixture
def small_client(root_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(workspace_root=root_dir, max_batch_steps=2))) as client:
        yield client


def test_max_steps_is_a_setting(small_client: TestClient) -> None:
    assert small_client.post("/steps/batch", json={"steps": [_delete("a")] * 2}).status_code == 200
    response = small_client.post("/steps/batch", json={"steps": [_delete("a")] * 3})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "steps"


def test_staging_area_is_unreachable(client: TestClient, root_dir: Path) -> None:
    for path in (".stepd", ".stepd/trash", "x/../.stepd/state"):
        response = client.post("/steps/batch", json={"steps": [_delete(path)]})
        assert response.status_code == 422, path
    glob = {"uses": "delete", "config": {"paths": ["**", ".*"], "pathsAreGlobs": True}}
    assert client.post("/steps/batch", json={"steps": [glob]}).status_code == 200
    assert (root_dir / ".stepd" / "state").is_dir()


def _trash_once_purged(client: TestClient, root_dir: Path) -> list[str]:
    """The trash, once the background purger has freed everything handed to it."""
    assert client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
    return os.listdir(root_dir / ".stepd" / "trash")
