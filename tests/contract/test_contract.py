"""Recorded request/response pairs of every released version, replayed as they are.

Each ``<version>/<case>.json`` holds a tree to set up, the request, the expected status
and body, and what must (not) exist afterwards. These files never change: a failure here
means a released contract broke. A success body is compared whole; a problem body on its
stable members (``type``, ``title``, ``status``, ``code`` and the recorded extensions),
with ``detail`` only required to be there, since it is prose.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

HERE = Path(__file__).parent
CASES = sorted(HERE.glob("*/*.json"))


def build(root: Path, tree: dict[str, Any]) -> None:
    for name in tree.get("dirs", []):
        (root / name).mkdir(parents=True, exist_ok=True)
    for name, content in tree.get("files", {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    for name, target in tree.get("symlinks", {}).items():
        (root / name).symlink_to(target)


def test_both_versions_are_recorded() -> None:
    assert {case.parent.name for case in CASES} == {"v1", "v1alpha1"}


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_exchange(case: Path, client: TestClient, root_dir: Path) -> None:
    recorded = json.loads(case.read_text())
    build(root_dir, recorded["tree"])
    precious = root_dir.parent / "outside" / "precious.txt"

    response = client.post("/steps/delete", json=recorded["request"])

    expected = recorded["response"]
    assert response.status_code == expected["status"], response.text
    body = response.json()
    if response.status_code == 200:
        assert response.headers["content-type"] == "application/json"
        assert body == expected["body"]
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert {key: body.get(key) for key in expected["body"]} == expected["body"]
        assert isinstance(body["detail"], str)
    for name in recorded["after"]["exists"]:
        assert os.path.lexists(root_dir / name), f"{name} should still exist"
    for name in recorded["after"]["gone"]:
        assert not os.path.lexists(root_dir / name), f"{name} should be gone"
    assert precious.read_text() == "keep me"
