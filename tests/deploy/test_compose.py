"""compose.yaml: valid against the Compose Specification's schema, and wired as intended.

The schema check is check-jsonschema with its vendored copy of the compose-spec JSON
schema (the schema Docker Compose itself loads files against), so it runs offline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.image import REPO, Image, read_image

COMPOSE = REPO / "compose.yaml"
VENV_BIN = Path(sys.executable).parent


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    stepd: dict[str, Any] = compose["services"]["stepd"]
    return stepd


def test_compose_file_matches_the_compose_spec_schema() -> None:
    result = _check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_is_live_and_rejects_an_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  stepd:\n    image: stepd\n    readonly: true\n")
    result = _check_compose_schema(bad)
    assert result.returncode == 1
    assert "readonly" in result.stdout


def test_workspace_is_a_named_volume_at_the_image_volume_path(
    compose: dict[str, Any], service: dict[str, Any]
) -> None:
    image = read_image()
    assert service["volumes"] == [f"workspace:{image.volumes[0]}"]
    assert "workspace" in compose["volumes"]
    assert service["environment"]["STEPD_WORKSPACE_ROOT"] == image.volumes[0]


def test_root_filesystem_is_read_only_with_a_tmpfs_and_no_privileges(
    service: dict[str, Any],
) -> None:
    assert service["read_only"] is True
    assert service["tmpfs"] == ["/tmp"]
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]


def test_runs_as_the_image_user_and_publishes_its_port(service: dict[str, Any]) -> None:
    image: Image = read_image()
    assert service["user"] == image.user
    port = service["environment"]["STEPD_PORT"]
    assert port in image.exposed
    assert [p.rsplit(":", 1)[1] for p in service["ports"]] == [port]


def test_tokens_come_from_a_secret_file_that_is_never_committed(
    compose: dict[str, Any], service: dict[str, Any]
) -> None:
    (secret,) = service["secrets"]
    mounted_at = f"/run/secrets/{secret['target']}"
    assert service["environment"]["STEPD_AUTH_TOKENS_FILE"] == mounted_at
    secret_file = REPO / compose["secrets"][secret["source"]]["file"]
    assert secret_file.with_name(secret_file.name + ".example").is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", str(secret_file)], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, f"{secret_file} must be git-ignored"


REPLICAS = ("stepd-a", "stepd-b")


def test_the_ha_profile_runs_two_replicas_on_one_root_and_one_database(
    compose: dict[str, Any], service: dict[str, Any]
) -> None:
    services = compose["services"]
    assert "profiles" not in service
    postgres = services["postgres"]
    assert postgres["profiles"] == ["ha"]
    assert postgres["environment"]["POSTGRES_DB"] == "stepd"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    env_file = REPO / postgres["env_file"]
    example = env_file.with_name(env_file.name + ".example")
    settings = dict(line.split("=", 1) for line in example.read_text().split())
    assert settings["STEPD_IDEMPOTENCY_STORE"].startswith("postgresql://stepd:")
    assert settings["STEPD_IDEMPOTENCY_STORE"].endswith("@postgres:5432/stepd")
    assert (
        subprocess.run(["git", "check-ignore", "--quiet", str(env_file)], cwd=REPO).returncode == 0
    )

    replicas = [services[name] for name in REPLICAS]
    ports = set()
    for name, replica in zip(REPLICAS, replicas, strict=True):
        assert replica["profiles"] == ["ha"]
        assert replica["env_file"] == postgres["env_file"]
        assert replica["environment"]["STEPD_INSTANCE_ID"] == name
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        # One root: the same volume; everything else as the plain service.
        assert replica["volumes"] == service["volumes"]
        for key in ("user", "read_only", "tmpfs", "cap_drop", "security_opt", "secrets"):
            assert replica[key] == service[key], key
        (port,) = replica["ports"]
        assert port.startswith("127.0.0.1:")
        ports.add(port)
    assert len(ports) == len(REPLICAS)
