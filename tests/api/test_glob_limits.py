"""``STEPD_MAX_GLOB_ENTRIES``: a request whose globs would visit more is ``422
glob_too_broad`` and deletes nothing; the budget is the request's, shared by its steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.problems import assert_problem
from tests.support.snapshot import snapshot

LIMIT = 500


@pytest.fixture
def tree(root_dir: Path) -> Path:
    """Two workspaces of 200 entries each."""
    for workspace in ("a", "b"):
        for n in range(199):
            (root_dir / workspace / "sub" / f"f{n}.yaml").parent.mkdir(parents=True, exist_ok=True)
            (root_dir / workspace / "sub" / f"f{n}.yaml").write_text("x")
    return root_dir


@pytest.fixture
def narrow(tree: Path) -> Iterator[TestClient]:
    app = create_app(Settings(workspace_root=tree, max_glob_entries=LIMIT))
    with TestClient(app) as client:
        yield client


def test_a_glob_within_the_budget_runs(narrow: TestClient, tree: Path) -> None:
    response = narrow.post(
        "/steps/delete", json={"workspace": "a", "paths": ["sub/f1?.yaml"], "pathsAreGlobs": True}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["deleted"]) == 10


def test_past_it_the_request_is_refused_and_nothing_deleted(narrow: TestClient, tree: Path) -> None:
    before = snapshot(tree)
    response = narrow.post(
        "/steps/delete",
        json={"workspace": "a", "paths": ["**/*.yaml", "**/*.yml"], "pathsAreGlobs": True},
    )
    body = assert_problem(response, 422, "glob_too_broad")
    assert str(LIMIT) in body["detail"]
    assert snapshot(tree) == before


def test_the_steps_of_a_batch_share_it(narrow: TestClient, tree: Path) -> None:
    step = {"uses": "delete", "config": {"paths": ["sub/*1.yaml"], "pathsAreGlobs": True}}
    alone = narrow.post("/steps/batch", json={"workspace": "a", "steps": [step]})
    assert alone.status_code == 200, alone.text
    both = narrow.post(
        "/steps/batch", json={"workspace": "b", "atomic": True, "steps": [step, step, step]}
    )
    body = assert_problem(both, 422, "glob_too_broad")
    assert body["rolledBack"] is True
    assert [step["status"] for step in body["steps"]] == ["Succeeded", "Failed", "Skipped"]
    assert len(list((tree / "b" / "sub").iterdir())) == 199


def test_the_kargo_step_plugin_route_has_it_too(tree: Path, tmp_path: Path) -> None:
    settings = Settings(
        workspace_root=tree, max_glob_entries=LIMIT, state_dir=tmp_path / "state", purge="inline"
    )
    config = {"paths": ["**/*.yaml", "**/*.yml"], "pathsAreGlobs": True}
    body = {
        "context": {"workDir": str(tree / "a")},
        "step": {"kind": "stepd-delete", "config": config},
    }
    before = snapshot(tree / "a")
    with TestClient(create_app(settings)) as client:
        answer = client.post("/api/v1/step.execute", json=body).json()
    assert answer["status"] == "Failed", answer
    assert answer["message"].startswith("glob_too_broad:")
    assert snapshot(tree / "a") == before
