"""The Dockerfile: hadolint-clean, and its exact command and health check work, with
TLS off and on.

No Docker engine runs here, so the image's final stage is read with BuildKit's own
parser and its ``CMD`` and ``HEALTHCHECK`` are run as they are written, with the
image's ``ENV``, on this machine. The only changes are the ones a container would
get from its surroundings: loopback instead of 0.0.0.0, a free port, a temp dir for
the ``/workspace`` volume, this virtualenv for ``/opt/stepd`` and a temp tokens file
for the secret mount.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from pathlib import Path

import dockerfile
import httpx
import pytest
import trustme

from tests.deploy.image import DOCKERFILE, Image, expand, json_list, read_image
from tests.support.server import free_port, running

VENV_BIN = Path(sys.executable).parent
IMAGE_VENV = "/opt/stepd"
TOKEN = "test-token-for-the-dockerfile-check"


@pytest.fixture(scope="module")
def image() -> Image:
    return read_image()


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_hadolint_passes() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_live_and_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    assert "DL3006" in result.stdout


def test_build_context_keeps_what_the_build_copies() -> None:
    kept = {
        line.removeprefix("!").rstrip("/")
        for line in (DOCKERFILE.parent / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source.rstrip("/")
        for command in dockerfile.parse_file(str(DOCKERFILE))
        if command.cmd.upper() == "COPY" and not command.flags
        for source in command.value[:-1]
    }
    assert copied, "expected COPY instructions from the build context"
    assert copied <= kept, f"excluded by .dockerignore: {sorted(copied - kept)}"


def test_every_stage_uses_one_pinned_slim_python(image: Image) -> None:
    assert len(image.bases) >= 2, "expected a multi-stage build"
    assert set(image.bases) == {image.bases[-1]}
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image.bases[-1])


def test_runs_as_a_numeric_non_root_user_owning_the_workspace_volume(image: Image) -> None:
    assert image.uid >= 1000
    workspace = image.env["STEPD_WORKSPACE_ROOT"]
    assert image.volumes == [workspace]
    owner = image.args["STEPD_UID"]
    assert str(image.uid) == owner
    assert any(f'chown "${{STEPD_UID}}:${{STEPD_UID}}" {workspace}' in run for run in image.runs)


def test_command_is_stepd_serve_configured_by_environment(image: Image) -> None:
    assert image.start_argv == ("stepd", "serve"), json_list(image.start_argv)
    assert image.env["STEPD_HOST"] == "0.0.0.0"
    assert image.exposed == [image.env["STEPD_PORT"]]
    assert image.env["STEPD_AUTH_TOKENS_FILE"].startswith("/run/secrets/")


def test_health_check_is_stepd_healthcheck_with_the_images_settings(image: Image) -> None:
    assert image.healthcheck is not None
    assert image.healthcheck.argv == ("stepd", "healthcheck")


def _local_environment(image: Image, workspace: Path, tokens: Path, port: int) -> dict[str, str]:
    """The image's ENV, as a container on this machine would see it."""
    # What the base image provides: its PATH (here, this machine's) and a UTF-8 locale.
    environment = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    for key, value in image.env.items():
        environment[key] = expand(value, environment).replace(IMAGE_VENV, sys.prefix)
    environment.update(
        STEPD_HOST="127.0.0.1",
        STEPD_PORT=str(port),
        STEPD_WORKSPACE_ROOT=str(workspace),
        STEPD_AUTH_TOKENS_FILE=str(tokens),
    )
    return environment


def _health_check(image: Image, environment: dict[str, str]) -> int:
    assert image.healthcheck is not None
    result = subprocess.run(
        list(image.healthcheck.argv),
        env=environment,
        capture_output=True,
        text=True,
        timeout=image.healthcheck.timeout_seconds(),
        check=False,
    )
    return result.returncode


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_image_command_serves_and_health_check_tracks_it(
    image: Image, tmp_path: Path, ca: trustme.CA, tls: bool
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "stale.txt").write_text("x")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    port = free_port()
    environment = _local_environment(image, workspace, tokens, port)
    verify: ssl.SSLContext | bool = False
    if tls:
        # What the TLS component mounts: a certificate for the service's name, not for
        # the loopback address the check connects to.
        cert = ca.issue_cert("stepd.stepd.svc.cluster.local")
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
        cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
        environment["STEPD_TLS_CERT_FILE"] = str(tmp_path / "tls.crt")
        environment["STEPD_TLS_KEY_FILE"] = str(tmp_path / "tls.key")
        verify = ssl.create_default_context()
        verify.check_hostname = False
        ca.configure_trust(verify)

    with running(image.start_argv, env=environment) as server:
        assert _health_check(image, environment) == 0
        response = httpx.post(
            server.url("/steps/delete", "https" if tls else "http"),
            json={"path": "stale.txt"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            verify=verify,
        )
        assert response.status_code == 200, response.text
        assert response.json()["deleted"] == ["stale.txt"]

    assert not (workspace / "stale.txt").exists()
    assert _health_check(image, environment) == 1
