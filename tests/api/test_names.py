"""Names that are not valid UTF-8, through a real ``stepd serve``: every answer, replay,
problem and log line carries them escaped (``\\xNN``), and they read back to the bytes."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.names import unprintable
from tests.support.problems import assert_problem
from tests.support.server import Server, serve

NAMES = [b"caf\xe9.tmp", b"\xff\xfe.tmp", b"x41-\\x41.tmp"]


@pytest.fixture(scope="module")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="module")
def server(server_root: Path) -> Iterator[Server]:
    with serve(server_root, env={"STEPD_LOG_LEVEL": "debug"}) as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def workspace(server_root: Path) -> Path:
    """A new workspace holding every name of ``NAMES``."""
    path = server_root / f"ws-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    for name in NAMES:
        with open(os.fsencode(path) + b"/" + name, "wb") as handle:
            handle.write(name)
    return path


def _raw(workspace: Path) -> list[bytes]:
    return sorted(os.listdir(os.fsencode(workspace)))


def test_a_glob_deletes_them_and_the_answer_names_them(http: httpx.Client, workspace: Path) -> None:
    response = http.post(
        "/steps/delete",
        json={"workspace": workspace.name, "paths": ["*.tmp"], "pathsAreGlobs": True},
    )
    assert response.status_code == 200, response.text
    assert sorted(unprintable(path) for path in response.json()["deleted"]) == sorted(NAMES)
    assert _raw(workspace) == []


def test_a_batch_step_names_them_too(http: httpx.Client, workspace: Path) -> None:
    step = {"uses": "delete", "config": {"paths": ["*\\x41*", "c*"], "pathsAreGlobs": True}}
    response = http.post("/steps/batch", json={"workspace": workspace.name, "steps": [step]})
    assert response.status_code == 200, response.text
    [result] = response.json()["steps"]
    assert sorted(map(unprintable, result["deleted"])) == [b"caf\xe9.tmp", b"x41-\\x41.tmp"]
    assert _raw(workspace) == [b"\xff\xfe.tmp"]


def test_a_strict_keyed_request_is_kept_and_replayed(http: httpx.Client, workspace: Path) -> None:
    body = {
        "workspace": workspace.name,
        "paths": ["??.tmp", "*.tmp"],  # "?" matches one byte that is not UTF-8
        "pathsAreGlobs": True,
        "strict": True,
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = http.post("/steps/delete", json=body, headers=key)
    assert first.status_code == 200, first.text
    assert first.json()["absent"] == []
    again = http.post("/steps/delete", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content


def test_a_problem_names_one(http: httpx.Client, workspace: Path) -> None:
    locked = os.fsencode(workspace) + b"/" + NAMES[1]
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: cannot make a file immutable as root")
    made = subprocess.run(["chattr", "+i", locked], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
    try:
        response = http.post(
            "/steps/delete",
            json={"workspace": workspace.name, "paths": ["??.tmp"], "pathsAreGlobs": True},
        )
    finally:
        subprocess.run(["chattr", "-i", locked], check=True)
    body = assert_problem(response, 403, "permission_denied")
    assert unprintable(body["path"]) == NAMES[1]
    assert "\\xff\\xfe.tmp" in body["detail"]


def test_every_log_line_is_json(server: Server, http: httpx.Client, workspace: Path) -> None:
    response = http.post(
        "/steps/delete",
        json={"workspace": workspace.name, "paths": ["*"], "pathsAreGlobs": True},
        headers={"X-Request-ID": "non-utf8-logs"},
    )
    assert response.status_code == 200
    server.wait_for_line(lambda line: line.get("request_id") == "non-utf8-logs")
    assert not [line for line in server.lines if "raw" in line]
