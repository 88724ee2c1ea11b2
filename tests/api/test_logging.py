"""Logs of a real ``stepd serve``: one JSON line per request, uvicorn's own lines in the
same format, ``X-Request-ID`` taken, made and echoed, and nothing secret written."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app import __version__
from app.main import create_app
from app.settings import Settings
from tests.support.server import Server, serve

UUID_HEX = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="module")
def server(server_root: Path) -> Iterator[Server]:
    with serve(server_root) as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url) as client:
        yield client


def test_every_line_is_one_json_object(server: Server, http: httpx.Client) -> None:
    http.get("/healthz")
    server.wait_for_line(lambda line: line.get("route") == "/healthz")
    assert server.lines
    for line in server.lines:
        assert "raw" not in line, line
        assert {"timestamp", "level", "logger", "message"} <= line.keys()


def test_uvicorn_logs_through_the_same_formatter(server: Server) -> None:
    started = server.wait_for_line(lambda line: "startup complete" in line.get("message", ""))
    assert started["logger"] == "uvicorn.error"
    assert started["level"] == "info"
    assert "color_message" not in started


def test_one_start_up_line_says_what_is_in_force(server: Server, server_root: Path) -> None:
    [line] = [line for line in server.lines if line.get("message", "").startswith("stepd ")]
    assert line["message"] == f"stepd {__version__} serving {server.base_url}"
    assert line["version"] == __version__
    assert line["url"] == server.base_url
    assert line["root"] == str(server_root.resolve())
    assert line["auth"] == "none (loopback only)"
    assert line["tls"] == "off"
    assert line["purge"] == "background"
    state = server_root.resolve() / ".stepd" / "state" / "idempotency.sqlite3"
    assert line["store"] == f"sqlite {state}"


def test_one_line_per_request_with_its_outcome(
    server: Server, server_root: Path, http: httpx.Client
) -> None:
    (server_root / "ws1" / "out").mkdir(parents=True)
    response = http.post(
        "/steps/delete",
        json={"workspace": "ws1", "paths": ["out", "gone"]},
        headers={"X-Request-ID": "delete-ws1-1"},
    )
    assert response.status_code == 200
    [line] = server.access_lines("delete-ws1-1")
    assert line["message"] == "request"
    assert line["level"] == "info"
    assert line["method"] == "POST"
    assert line["path"] == "/steps/delete"
    assert line["route"] == "/steps/delete"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["step"] == "delete"
    assert line["workspace"] == "ws1"
    assert (line["deleted"], line["absent"], line["failed"]) == (1, 1, 0)
    assert line["caller"] == "anonymous"
    assert "problem" not in line


def test_a_problem_is_logged_with_its_code(server: Server, http: httpx.Client) -> None:
    response = http.post(
        "/steps/delete",
        json={"paths": ["a", "b"], "strict": True},
        headers={"X-Request-ID": "strict-1"},
    )
    assert response.status_code == 404
    [line] = server.access_lines("strict-1")
    assert line["status"] == 404
    assert line["problem"] == "not_found"
    assert line["workspace"] is None
    assert (line["deleted"], line["absent"], line["failed"]) == (0, 0, 2)


def test_a_request_without_step_has_no_step_fields(server: Server, http: httpx.Client) -> None:
    response = http.post(
        "/steps/delete",
        content=b"{",
        headers={"X-Request-ID": "bad-json-1", "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    [line] = server.access_lines("bad-json-1")
    assert line["problem"] == "invalid_request"
    assert "step" not in line
    assert "deleted" not in line


def test_request_id_is_echoed(server: Server, http: httpx.Client) -> None:
    response = http.get("/healthz", headers={"X-Request-ID": "caller-7f3a"})
    assert response.headers["X-Request-ID"] == "caller-7f3a"
    assert server.access_lines("caller-7f3a")[0]["route"] == "/healthz"


def test_request_id_is_generated_when_absent(server: Server, http: httpx.Client) -> None:
    response = http.get("/healthz")
    generated = response.headers["X-Request-ID"]
    assert UUID_HEX.fullmatch(generated)
    assert server.access_lines(generated)[0]["status"] == 200


@pytest.mark.parametrize(
    "invalid",
    [b"has space", b"x" * 129, b"tab\there", "caf\u00e9".encode(), b""],
    ids=["space", "too-long", "control", "non-ascii", "empty"],
)
def test_invalid_request_id_is_replaced(server: Server, http: httpx.Client, invalid: bytes) -> None:
    response = http.get("/healthz", headers=[(b"X-Request-ID", invalid)])
    replaced = response.headers["X-Request-ID"]
    assert UUID_HEX.fullmatch(replaced)
    [line] = server.access_lines(replaced)
    if invalid:
        assert invalid.decode("latin-1") not in str(line)


def test_request_id_is_returned_on_errors(server: Server, http: httpx.Client) -> None:
    response = http.get("/no/such/route", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "lost-1"
    [line] = server.access_lines("lost-1")
    assert line["route"] == "<unmatched>"
    assert line["problem"] == "route_not_found"


def test_bodies_and_authorization_are_never_logged(server: Server, http: httpx.Client) -> None:
    response = http.post(
        "/steps/delete",
        json={"path": "body-marker-5d1c"},
        headers={"Authorization": "Bearer token-marker-9e2b", "X-Request-ID": "secret-1"},
    )
    assert response.status_code == 200
    server.access_lines("secret-1")
    written = str(server.lines)
    assert "body-marker-5d1c" not in written
    assert "token-marker-9e2b" not in written


def test_uvicorn_access_log_is_replaced_by_ours(server: Server, http: httpx.Client) -> None:
    http.get("/healthz", headers={"X-Request-ID": "only-ours-1"})
    server.access_lines("only-ours-1")
    assert not [line for line in server.lines if line.get("logger") == "uvicorn.access"]


def test_console_format_is_for_humans(tmp_path: Path) -> None:
    with serve(tmp_path, "--log-format", "console") as running:
        httpx.get(running.url("/healthz"), headers={"X-Request-ID": "human-1"})
        line = running.wait_for_line(lambda line: "human-1" in line.get("raw", ""))
    text = line["raw"]
    assert "request" in text
    assert "method=GET" in text
    assert "route=/healthz" in text
    assert "status=200" in text


def test_unexpected_error_is_logged_as_500_with_request_id(
    root_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(workspace_root=root_dir))

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.INFO, logger="stepd.access"),
    ):
        response = client.get("/broken", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.json()["code"] == "internal"
    assert response.headers["X-Request-ID"] == "bug-1"
    [record] = [r for r in caplog.records if r.name == "stepd.access"]
    assert record.__dict__["status"] == 500
    assert record.__dict__["problem"] == "internal"
    assert record.__dict__["request_id"] == "bug-1"


def test_access_lines_name_the_caller_never_the_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("kargo-demo:named-token-4b1e-1a2b\nbare-token-77c0-1a2b\n")
    with serve(tmp_path, "--auth-tokens-file", str(tokens)) as running:
        calls = [("named", "named-token-4b1e"), ("bare", "bare-token-77c0"), ("refused", "wrong")]
        for request_id, token in calls:
            headers = {"Authorization": f"Bearer {token}-1a2b", "X-Request-ID": request_id}
            httpx.post(running.url("/steps/delete"), json={"path": "x"}, headers=headers)
        [named] = running.access_lines("named")
        [bare] = running.access_lines("bare")
        [wrong] = running.access_lines("refused")
        written = running.output()
    assert (named["status"], named["caller"]) == (200, "kargo-demo")
    digest = hashlib.sha256(b"bare-token-77c0-1a2b").hexdigest()[:12]
    assert (bare["status"], bare["caller"]) == (200, f"sha256:{digest}")
    assert (wrong["status"], wrong["caller"]) == (401, None)
    assert "-1a2b" not in written
