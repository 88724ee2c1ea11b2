"""``stepd serve``: refuses what it cannot serve in one line naming the setting, honours
STEPD_* variables and says in ``--help`` what each is; ``stepd healthcheck``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from app.settings import Settings, option, variable
from tests.support.server import SERVE, clean_environment, running, stepd_command


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


def test_help_lists_every_setting_with_its_variable_and_option() -> None:
    result = subprocess.run(
        [*SERVE, "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    flat = " ".join(result.stdout.split())
    for name, field in Settings.model_fields.items():
        assert option(name) in flat, name
        assert f"[{variable(name)}; default: " in flat, name
        assert field.description, f"{name} has no description for --help"
        assert " ".join(field.description.split()) in flat, name


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"STEPD_IDEMPOTENCY_TTL": "soon"}, "STEPD_IDEMPOTENCY_TTL='soon' (--idempotency-ttl)"),
        (("--purge", "later"), {}, "--purge: invalid choice: 'later'"),
        (("--max-body-bytes", "0"), {}, "--max-body-bytes '0' (STEPD_MAX_BODY_BYTES)"),
        ((), {"STEPD_ROOT_PATH": "stepd/"}, "STEPD_ROOT_PATH='stepd/' (--root-path)"),
    ],
    ids=["variable", "choice", "option", "root-path"],
)
def test_an_invalid_setting_names_its_variable_and_option(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    result = serve("--workspace-root", str(tmp_path), *args, env=env)
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_a_root_that_cannot_serve_names_its_setting(tmp_path: Path) -> None:
    assert_refused(
        serve("--workspace-root", str(tmp_path / "nope")),
        "(STEPD_WORKSPACE_ROOT / --workspace-root) does not exist",
    )


def test_a_port_in_use_is_one_line_and_exit_2_before_anything_starts(root_dir: Path) -> None:
    with running(stepd_command(root_dir)) as first:
        result = serve(
            "--workspace-root", str(root_dir), "--port", str(first.port), env=clean_environment()
        )
        assert first.alive()
    assert_refused(result, f"cannot listen on 127.0.0.1:{first.port} (STEPD_PORT / --port)")
    assert "Address already in use" in result.stderr
    assert result.stdout == ""


def test_healthcheck_follows_the_server_it_describes(root_dir: Path) -> None:
    with running(stepd_command(root_dir)) as server:
        env = clean_environment({"STEPD_PORT": str(server.port)})
        assert healthcheck(env).returncode == 0
    result = healthcheck(env)
    assert result.returncode == 1
    assert result.stderr.startswith("stepd: healthcheck: ")


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``stepd healthcheck`` with ``env`` as its whole environment."""
    command = [*SERVE[:-1], "healthcheck"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, check=False)
