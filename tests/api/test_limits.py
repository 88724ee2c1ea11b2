"""Limits and bad input: size, content type, path shape, and clients that stall or flood."""

from __future__ import annotations

import codecs
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.sandbox.paths import MAX_PATH_BYTES, MAX_SEGMENT_BYTES, MAX_SEGMENTS
from app.settings import Settings
from tests.support.problems import assert_problem, assert_raw_problem
from tests.support.server import Server, read_response, serve

LIMIT = 1000
JSON = {"content-type": "application/json"}


@pytest.fixture
def small(root_dir: Path) -> Iterator[TestClient]:
    """The app with a body limit of ``LIMIT`` bytes."""
    with TestClient(create_app(Settings(workspace_root=root_dir, max_body_bytes=LIMIT))) as client:
        yield client


def padded_body(size: int) -> bytes:
    """A valid delete request of exactly ``size`` bytes."""
    head = json.dumps({"path": "x"})[:-1] + ', "workspace": "w"'
    return (head + " " * (size - len(head) - 1) + "}").encode()


def test_default_body_limit_is_one_mebibyte() -> None:
    assert Settings().max_body_bytes == 1024 * 1024


def test_a_body_at_the_limit_is_served(small: TestClient) -> None:
    response = small.post("/steps/delete", content=padded_body(LIMIT), headers=JSON)
    assert response.status_code == 200


def test_a_body_over_the_limit_is_413(small: TestClient, root_dir: Path) -> None:
    (root_dir / "x").write_text("x")
    response = small.post("/steps/delete", content=padded_body(LIMIT + 1), headers=JSON)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    assert (root_dir / "x").exists()


def test_a_streamed_body_over_the_limit_is_413(small: TestClient) -> None:
    body = padded_body(LIMIT + 1)
    chunks = iter([body[:500], body[500:]])
    response = small.post("/steps/delete", content=chunks, headers=JSON)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_a_body_that_is_not_json_is_415(small: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = small.post("/steps/delete", content=b'{"path": "x"}', headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON; charset=UTF-8", "application/vnd.kargo+json"],
)
def test_json_media_types_are_accepted(small: TestClient, content_type: str) -> None:
    headers = {"content-type": content_type}
    response = small.post("/steps/delete", content=b'{"path": "x"}', headers=headers)
    assert response.status_code == 200


def test_more_than_1000_paths_is_invalid_request(client: TestClient) -> None:
    response = client.post("/steps/delete", json={"paths": [f"p{i}" for i in range(1001)]})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert response.json()["errors"][0]["field"] == "paths"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("a/" * (MAX_PATH_BYTES // 2) + "b", "path_too_long"),
        ("x" * (MAX_SEGMENT_BYTES + 1), "name_too_long"),
        ("é" * (MAX_SEGMENT_BYTES // 2 + 1), "name_too_long"),
        ("a/" * MAX_SEGMENTS + "b", "too_many_segments"),
        ("../" * (MAX_SEGMENTS + 1) + "etc", "too_many_segments"),
    ],
    ids=["path", "segment", "multibyte-segment", "segments", "many-dotdot"],
)
def test_oversized_paths_are_422_with_their_own_code(
    client: TestClient, path: str, code: str
) -> None:
    for body in ({"path": path}, {"paths": [path], "pathsAreGlobs": True}):
        response = client.post("/steps/delete", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code


def test_a_long_pattern_is_refused_before_brace_expansion(client: TestClient) -> None:
    pattern = "{a,b}" * (MAX_PATH_BYTES // 5 + 1)
    response = client.post("/steps/delete", json={"paths": [pattern], "pathsAreGlobs": True})
    assert response.status_code == 422
    assert response.json()["code"] == "path_too_long"


# Against a real server: what depends on uvicorn and the socket.


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("limits")
    (base / "root").mkdir()
    env = {
        "STEPD_MAX_BODY_BYTES": str(LIMIT),
        "STEPD_BODY_TIMEOUT": "1",
        "STEPD_KEEP_ALIVE_TIMEOUT": "1",
        "STEPD_MAX_HEADER_BYTES": "4096",
        "STEPD_HEADER_TIMEOUT": "1",
    }
    with serve(base / "root", env=env) as running:
        yield running


def chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def post_head(extra: bytes) -> bytes:
    return (
        b"POST /steps/delete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra
        + b"\r\n"
    )


def test_chunked_body_within_the_limit_is_served(server: Server) -> None:
    body = padded_body(LIMIT)
    with httpx.Client() as client:
        response = client.post(server.url("/steps/delete"), content=iter([body]), headers=JSON)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 200


def test_chunked_body_over_the_limit_is_413_while_reading(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(post_head(b"Transfer-Encoding: chunked\r\n"))
        sock.sendall(chunked(padded_body(LIMIT + 1), 300))
        status, headers, body = read_response(sock)
    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body)["code"] == "payload_too_large"


def test_a_huge_content_length_is_413_without_reading(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(post_head(b"Content-Length: 1000000000\r\n"))
        status, _, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["code"] == "payload_too_large"


def test_a_client_that_stalls_mid_body_gets_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(post_head(b"Content-Length: 100\r\n") + b'{"path": ')
        status, headers, body = read_response(sock)
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["code"] == "request_timeout"


def test_unfinished_headers_past_the_limit_are_431(server: Server) -> None:
    # h11 bounds what it buffers while the headers are incomplete: a client dripping an
    # endless header block is cut off there.
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192)
        answer = read_response(sock)
    assert_raw_problem(answer, 431, "headers_too_large")
    assert answer[1]["connection"] == "close"


@pytest.mark.parametrize(
    "request_line",
    [b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", b"\x16\x03\x01\x02\x00"],
    ids=["request-line", "header", "tls-hello"],
)
def test_invalid_http_is_a_400_problem(server: Server, request_line: bytes) -> None:
    with server.connect() as sock:
        sock.sendall(request_line + b"\r\n\r\n")
        answer = read_response(sock)
    assert_raw_problem(answer, 400, "http_error")


def read_all(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    start = time.monotonic()
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - start


def test_a_head_that_does_not_arrive_in_time_is_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = read_response(sock)
    assert_raw_problem(answer, 408, "request_timeout")
    assert "headers did not arrive within 1 seconds" in json.loads(answer[2])["detail"]


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(server: Server) -> None:
    with server.connect() as sock:
        data, seconds = read_all(sock)
    assert data == b""
    assert 0.9 <= seconds < 5


def test_the_next_request_on_a_kept_alive_connection_is_timed_too(server: Server) -> None:
    # The second request is pipelined behind the first, and never finished.
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /heal")
        data, seconds = read_all(sock)
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ")
    assert second.startswith(b"408 ")
    assert b'"code":"request_timeout"' in second
    assert seconds < 5


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(sock)
    assert status == 200
    assert "close" not in headers.get("connection", "")


def test_the_server_still_serves_after_all_that(server: Server) -> None:
    assert httpx.get(server.url("/healthz")).status_code == 200


# UTF-8 is the only encoding of JSON sent over a network (RFC 8259, 8.1), without a BOM.
ENCODINGS: dict[str, Callable[[str], bytes]] = {
    "utf-8-bom": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16-le": lambda text: text.encode("utf-16-le"),
    "utf-16-be": lambda text: text.encode("utf-16-be"),
    "utf-16-le-bom": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16-be-bom": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-32-le": lambda text: text.encode("utf-32-le"),
    "utf-32-be": lambda text: text.encode("utf-32-be"),
    "utf-32-le-bom": lambda text: codecs.BOM_UTF32_LE + text.encode("utf-32-le"),
    "utf-32-be-bom": lambda text: codecs.BOM_UTF32_BE + text.encode("utf-32-be"),
    "latin-1": lambda text: text.encode("latin-1"),
    "nul-in-utf-8": lambda text: text.replace("\u00e9", "\u00e9\x00").encode("utf-8"),
}
# A request deleting the file "é", to each endpoint.
DELETE_E_ACUTE = {
    "/steps/delete": json.dumps({"path": "\u00e9"}, ensure_ascii=False),
    "/steps/batch": json.dumps(
        {"steps": [{"uses": "delete", "config": {"path": "\u00e9"}}]}, ensure_ascii=False
    ),
}


@pytest.mark.parametrize("encoding", ENCODINGS.values(), ids=ENCODINGS.keys())
@pytest.mark.parametrize("endpoint", DELETE_E_ACUTE.keys())
def test_a_body_not_in_utf8_is_415_and_deletes_nothing(
    client: TestClient, root_dir: Path, encoding: Callable[[str], bytes], endpoint: str
) -> None:
    (root_dir / "\u00e9").write_text("x")
    body = encoding(DELETE_E_ACUTE[endpoint])
    response = client.post(endpoint, content=body, headers=JSON)
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert "UTF-8" in problem["detail"]
    assert (root_dir / "\u00e9").exists()


@pytest.mark.parametrize("endpoint", DELETE_E_ACUTE.keys())
def test_the_same_body_in_utf8_is_served(client: TestClient, root_dir: Path, endpoint: str) -> None:
    (root_dir / "\u00e9").write_text("x")
    body = DELETE_E_ACUTE[endpoint].encode("utf-8")
    response = client.post(endpoint, content=body, headers=JSON)
    assert response.status_code == 200
    assert not (root_dir / "\u00e9").exists()
