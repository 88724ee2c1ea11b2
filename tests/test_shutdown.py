"""SIGTERM: ``stepd serve`` stops accepting, lets in-flight requests finish, exits 0.

The in-flight request is a client that sends its body slowly: it is inside the server,
waiting for the rest of its body, when SIGTERM arrives, and it is only completed once the
server has shown that it is shutting down (it refuses new connections).
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import STOP_TIMEOUT, Server, read_response, serve

BODY = json.dumps({"path": "build"}).encode()


def start_slow_request(server: Server, request_id: str) -> socket.socket:
    """A delete whose headers and first body byte are sent; the rest is held back."""
    connection = server.connect()
    head = (
        "POST /steps/delete HTTP/1.1\r\n"
        "Host: stepd\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    connection.sendall(head.encode() + BODY[:1])
    return connection


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds; the deadline only keeps a broken test from hanging."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def in_progress(server: Server) -> float:
    """Requests being served, as the server's own metrics say (this scrape included)."""
    text = httpx.get(server.url("/metrics"), headers={"Connection": "close"}).text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == "stepd_http_requests_in_progress":
                return float(found.value)
    raise AssertionError("stepd_http_requests_in_progress is missing")


def refuses_connections(port: int) -> bool:
    """Whether the server no longer accepts connections: its shutdown has begun."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=STOP_TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    (tmp_path / "build" / "cache").mkdir(parents=True)
    (tmp_path / "build" / "cache" / "blob").write_bytes(b"x" * 4096)
    with serve(tmp_path) as server:
        connection = start_slow_request(server, "in-flight-1")
        with connection:
            wait_until(lambda: in_progress(server) >= 2)
            server.process.send_signal(signal.SIGTERM)
            wait_until(lambda: refuses_connections(server.port))
            connection.sendall(BODY[1:])
            answer, headers, body = read_response(connection)
        status = server.wait()

    assert answer == 200
    assert headers["x-request-id"] == "in-flight-1"
    assert json.loads(body)["deleted"] == ["build"]
    assert not (tmp_path / "build").exists()
    assert status == 0
    messages = [line.get("message") for line in server.lines]
    [access] = server.access_lines("in-flight-1")
    assert messages.index("Shutting down") < server.lines.index(access)
    assert access["status"] == 200


def test_sigterm_with_nothing_in_flight_exits_0(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        assert httpx.get(server.url("/healthz")).status_code == 200
        assert server.terminate() == 0
    assert "Application shutdown complete." in [line.get("message") for line in server.lines]


def test_shutdown_timeout_bounds_the_wait_for_a_stuck_request(tmp_path: Path) -> None:
    with (
        serve(tmp_path, env={"STEPD_SHUTDOWN_TIMEOUT": "1"}) as server,
        start_slow_request(server, "stuck-1") as connection,
    ):
        wait_until(lambda: in_progress(server) >= 2)
        status = server.terminate()
        # Cancelled after the timeout, the request gets uvicorn's own bare 500.
        assert read_response(connection)[0] == 500
    assert status == 0
    assert any(
        "timeout graceful shutdown exceeded" in str(line.get("message")) for line in server.lines
    )
