"""``stepd serve``: refuses a root it cannot serve, and honours STEPD_* variables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.server import SERVE, clean_environment, running


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app serve`` expecting it to refuse (a timeout means it served)."""
    return subprocess.run(
        [*SERVE, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stepd: ")
    assert reason in lines[0]
    assert "Traceback" not in result.stderr


def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    assert_refused(serve("--workspace-root", str(tmp_path / "nope")), "does not exist")


def test_a_file_as_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert_refused(serve("--workspace-root", str(tmp_path / "file")), "not a directory")


@pytest.mark.parametrize("root", ["/", "/.", "//", "/tmp/.."])
def test_the_filesystem_root_is_refused(root: str) -> None:
    assert_refused(serve("--workspace-root", root), "must not be '/'")


def test_the_root_is_read_from_the_environment(tmp_path: Path) -> None:
    env = {"STEPD_WORKSPACE_ROOT": str(tmp_path / "nope")}
    assert_refused(serve(env=env), "does not exist")


def test_an_option_overrides_the_environment(tmp_path: Path) -> None:
    env = {"STEPD_WORKSPACE_ROOT": str(tmp_path)}
    assert_refused(serve("--workspace-root", str(tmp_path / "nope"), env=env), "does not exist")


def test_an_invalid_port_in_the_environment_is_refused(tmp_path: Path) -> None:
    env = {"STEPD_PORT": "not-a-port", "STEPD_WORKSPACE_ROOT": str(tmp_path)}
    assert_refused(serve(env=env), "port")


def test_host_port_and_root_come_from_the_environment(root_dir: Path) -> None:
    (root_dir / "from-env").write_text("x")
    env = {
        "STEPD_HOST": "127.0.0.1",
        "STEPD_PORT": "0",
        "STEPD_WORKSPACE_ROOT": str(root_dir),
    }
    with running(SERVE, env=clean_environment(env)) as server:
        response = httpx.post(
            f"{server.base_url}/steps/delete", json={"path": "from-env"}, timeout=10
        )
        assert response.json()["deleted"] == ["from-env"]
    assert not (root_dir / "from-env").exists()
