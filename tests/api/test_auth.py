"""Bearer-token authentication: who may call, what others get, and rotation without restart."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.api import tokens as token_files
from app.api.auth import caller_of
from app.api.tokens import TokenFile
from app.main import create_app
from app.settings import Settings
from tests.support.server import read_response, serve

NAMED = "ci-token.AAAA"
UNNAMED = "plain-token_BBBB"
ROTATED = "rotated-token-CCCC"


def build_app(root_dir: Path, tokens: Path, **settings: object) -> FastAPI:
    app = create_app(Settings(workspace_root=root_dir, auth_tokens_file=tokens, **settings))

    @app.get("/steps/whoami")
    def whoami(request: Request) -> str:
        return caller_of(request)

    return app


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# CI runners\nci:{NAMED}\n\n   {UNNAMED}  \n")
    return path


@pytest.fixture
def every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token file looked at on every request, not once a second."""
    monkeypatch.setattr(token_files, "RECHECK_SECONDS", 0.0)


@pytest.fixture
def authed(root_dir: Path, tokens: Path) -> Iterator[TestClient]:
    with TestClient(build_app(root_dir, tokens)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response, challenge: str) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == challenge
    assert response.json()["code"] == "unauthorized"


def test_without_a_token_a_step_is_401_and_nothing_is_deleted(
    authed: TestClient, root_dir: Path
) -> None:
    (root_dir / "keep").write_text("x")
    response = authed.post("/steps/delete", json={"path": "keep"})
    assert_unauthorized(response, 'Bearer realm="stepd"')
    assert (root_dir / "keep").exists()


def test_a_wrong_token_is_invalid_token(authed: TestClient) -> None:
    response = authed.post("/steps/delete", json={"path": "x"}, headers=bearer("nope"))
    assert_unauthorized(response, 'Bearer realm="stepd", error="invalid_token"')


@pytest.mark.parametrize(
    "header", [f"Basic {NAMED}", NAMED, "Bearer", f"Bearer {NAMED} extra", "Bearer ci:x"]
)
def test_a_malformed_authorization_header_is_401(authed: TestClient, header: str) -> None:
    response = authed.post("/steps/delete", json={"path": "x"}, headers={"authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert "error=" in response.headers["www-authenticate"]


def test_a_token_from_the_file_runs_the_step(authed: TestClient, root_dir: Path) -> None:
    (root_dir / "out").write_text("x")
    response = authed.post("/steps/delete", json={"path": "out"}, headers=bearer(NAMED))
    assert response.status_code == 200
    assert response.json()["deleted"] == ["out"]
    assert not (root_dir / "out").exists()


def test_the_scheme_is_case_insensitive(authed: TestClient) -> None:
    response = authed.post(
        "/steps/delete", json={"path": "x"}, headers={"authorization": f"bearer {UNNAMED}"}
    )
    assert response.status_code == 200


def test_the_caller_is_the_tokens_name_or_a_digest_never_the_token(authed: TestClient) -> None:
    assert authed.get("/steps/whoami", headers=bearer(NAMED)).json() == "ci"
    unnamed = authed.get("/steps/whoami", headers=bearer(UNNAMED)).json()
    assert unnamed == "sha256:" + hashlib.sha256(UNNAMED.encode()).hexdigest()[:12]


def test_without_a_token_file_the_caller_is_anonymous(root_dir: Path) -> None:
    app = create_app(Settings(workspace_root=root_dir))

    @app.get("/steps/whoami")
    def whoami(request: Request) -> str:
        return caller_of(request)

    with TestClient(app) as client:
        assert client.get("/steps/whoami").json() == "anonymous"


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/docs", "/docs/assets/swagger-ui-bundle.js", "/openapi.json"],
)
def test_health_docs_and_spec_stay_open(authed: TestClient, path: str) -> None:
    assert authed.get(path).status_code == 200


def test_every_asset_the_docs_page_loads_is_open(authed: TestClient) -> None:
    page = authed.get("/docs")
    # Relative to the page, so that they work behind a path prefix too.
    assets = re.findall(r"[\"'](docs/assets/[^'\"]+)", page.text)
    assert len(assets) == 3, assets  # Swagger UI's script, stylesheet and icon
    for asset in assets:
        response = authed.get(f"/{asset}")
        assert response.status_code == 200, asset
        assert response.content


@pytest.mark.parametrize(
    "path",
    ["/docs/assets/../../steps/delete", "/docs/assets/%2e%2e/%2e%2e/steps/delete"],
    ids=["dots", "encoded-dots"],
)
def test_the_open_assets_lead_nowhere_else(authed: TestClient, root_dir: Path, path: str) -> None:
    (root_dir / "keep").write_text("x")
    # The client would remove plain dot segments: send the raw path as it is.
    request = authed.build_request("POST", "http://testserver", json={"path": "keep"})
    request.url = request.url.copy_with(raw_path=path.encode())
    response = authed.send(request)
    assert response.status_code == 401
    assert (root_dir / "keep").exists()


def test_only_the_docs_assets_are_open_below_the_docs(authed: TestClient) -> None:
    assert authed.get("/docs/assetsx").status_code == 401
    assert authed.get("/docs/oauth2-redirect").status_code == 401


def test_any_other_path_needs_a_token(authed: TestClient) -> None:
    assert authed.get("/admin").status_code == 401
    assert authed.get("/admin", headers=bearer(NAMED)).status_code == 404


def test_metrics_are_open_by_default(authed: TestClient) -> None:
    assert authed.get("/metrics").status_code != 401


def test_metrics_need_a_token_with_metrics_auth(root_dir: Path, tokens: Path) -> None:
    with TestClient(build_app(root_dir, tokens, metrics_auth=True)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(NAMED)).status_code != 401


def test_rewriting_the_file_rotates_tokens_without_restart(
    authed: TestClient, tokens: Path
) -> None:
    tokens.write_text(f"ci:{ROTATED}\n")
    assert authed.get("/steps/whoami", headers=bearer(NAMED)).status_code == 401
    assert authed.get("/steps/whoami", headers=bearer(ROTATED)).json() == "ci"


@pytest.mark.usefixtures("every_request")
def test_a_secret_volume_symlink_swap_rotates_tokens(root_dir: Path, tmp_path: Path) -> None:
    # The layout kubelet writes: tokens -> ..data/tokens, ..data -> ..<timestamp>/.
    volume = tmp_path / "secret"
    (volume / "..2024_01").mkdir(parents=True)
    (volume / "..2024_01" / "tokens").write_text(f"ci:{NAMED}\n")
    (volume / "..data").symlink_to("..2024_01")
    (volume / "tokens").symlink_to("..data/tokens")
    with TestClient(build_app(root_dir, volume / "tokens")) as client:
        assert client.get("/steps/whoami", headers=bearer(NAMED)).status_code == 200
        (volume / "..2024_02").mkdir()
        (volume / "..2024_02" / "tokens").write_text(f"ci:{ROTATED}\n")
        (volume / "..data_tmp").symlink_to("..2024_02")
        os.replace(volume / "..data_tmp", volume / "..data")
        (volume / "..2024_01" / "tokens").unlink()
        (volume / "..2024_01").rmdir()
        assert client.get("/steps/whoami", headers=bearer(NAMED)).status_code == 401
        assert client.get("/steps/whoami", headers=bearer(ROTATED)).json() == "ci"


def test_two_tokens_under_one_name_overlap_during_rotation(
    authed: TestClient, tokens: Path
) -> None:
    tokens.write_text(f"ci:{NAMED}\nci:{ROTATED}\n")
    assert authed.get("/steps/whoami", headers=bearer(NAMED)).json() == "ci"
    assert authed.get("/steps/whoami", headers=bearer(ROTATED)).json() == "ci"


def test_an_unparsable_rewrite_keeps_the_tokens_loaded_before(
    authed: TestClient, tokens: Path
) -> None:
    tokens.write_text("ci:not a token\n")
    assert authed.get("/steps/whoami", headers=bearer(NAMED)).json() == "ci"


def test_a_removed_file_keeps_the_tokens_loaded_before(authed: TestClient, tokens: Path) -> None:
    tokens.unlink()
    assert authed.get("/steps/whoami", headers=bearer(NAMED)).json() == "ci"


def test_a_file_emptied_at_run_time_refuses_everyone(authed: TestClient, tokens: Path) -> None:
    tokens.write_text("# all revoked\n")
    assert authed.get("/steps/whoami", headers=bearer(NAMED)).status_code == 401


def test_a_rewrite_is_in_force_within_the_recheck_interval(tokens: Path) -> None:
    token_file = TokenFile(tokens)
    assert token_file.match(NAMED) == "ci"
    tokens.write_text(f"ci:{ROTATED}\n")
    time.sleep(token_files.RECHECK_SECONDS + 0.05)
    assert token_file.match(NAMED) is None
    assert token_file.match(ROTATED) == "ci"


def test_the_file_is_not_looked_at_again_within_the_interval(
    tokens: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_files, "RECHECK_SECONDS", 3600.0)
    token_file = TokenFile(tokens)
    assert token_file.match(NAMED) == "ci"
    tokens.write_text(f"ci:{ROTATED}\n")
    assert token_file.match(NAMED) == "ci"
    assert token_file.match(ROTATED) is None


@pytest.mark.usefixtures("every_request")
def test_tokens_are_never_logged(
    authed: TestClient, tokens: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    authed.get("/steps/whoami", headers=bearer(NAMED))
    authed.get("/steps/whoami", headers=bearer("wrong-guess"))
    tokens.write_text(f"ci:{ROTATED}\nbad line with {NAMED}\n")
    authed.get("/steps/whoami", headers=bearer(NAMED))
    tokens.write_text(f"ci:{ROTATED}\n")
    authed.get("/steps/whoami", headers=bearer(ROTATED))
    assert "token file" in caplog.text
    for secret in (NAMED, ROTATED, "wrong-guess"):
        assert secret not in caplog.text


def test_401_is_sent_before_the_body_is_read(root_dir: Path, tokens: Path) -> None:
    # The server is told a body is coming that never does: only an answer decided from the
    # headers alone can arrive (reading would wait 120 s for it, past the socket's 30 s).
    env = {"STEPD_AUTH_TOKENS_FILE": str(tokens), "STEPD_BODY_TIMEOUT": "120"}
    with serve(root_dir, env=env) as server, server.connect() as sock:
        sock.sendall(
            b"POST /steps/delete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\nConnection: close\r\n\r\n"
        )
        status, headers, body = read_response(sock)
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="stepd"'
    assert b'"unauthorized"' in body
