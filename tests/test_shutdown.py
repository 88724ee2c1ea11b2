"""SIGTERM: ``stepd serve`` stops accepting, lets in-flight requests finish, stops step
work still running at a safe point, closes its descriptors once no thread can use them,
exits 0.

The in-flight request is a client that sends its body slowly: it is inside the server,
waiting for the rest of its body, when SIGTERM arrives, and it is only completed once the
server has shown that it is shutting down (it refuses new connections). Step work cut
short is a delete of a tree that takes seconds to remove, or an atomic batch of many
steps, signalled once they have begun.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from app.steps.stop import Stop
from tests.support.problems import assert_problem, assert_raw_problem
from tests.support.server import STOP_TIMEOUT, Server, read_response, serve
from tests.support.snapshot import snapshot

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
        serve(tmp_path, env={"STEPD_SHUTDOWN_TIMEOUT": "0.5"}) as server,
        start_slow_request(server, "stuck-1") as connection,
    ):
        wait_until(lambda: in_progress(server) >= 2)
        status = server.terminate()
        # Cancelled after the timeout, the request gets a problem, not uvicorn's bare 500.
        answer = read_response(connection)
    assert_raw_problem(answer, 503, "shutting_down")
    assert answer[1]["x-request-id"] == "stuck-1"
    assert answer[1]["retry-after"] == "1"
    assert status == 0
    assert any(
        "timeout graceful shutdown exceeded" in str(line.get("message")) for line in server.lines
    )
    [access] = server.access_lines("stuck-1")
    assert (access["status"], access["problem"]) == (503, "shutting_down")


# A tree whose deletion takes seconds: empty directories cost more to remove (open, list,
# close, rmdir) than to make, so a SIGTERM surely lands in the middle of it.
ENTRIES = 12
SUBDIRS = 300


def build_entries(root: Path, count: int, subdirs: int) -> list[str]:
    names = [f"d{n:02}" for n in range(count)]
    for name in names:
        (root / name).mkdir()
        for sub in range(subdirs):
            (root / name / f"s{sub}").mkdir()
    return names


def whole(path: Path, subdirs: int = SUBDIRS) -> bool:
    return path.is_dir() and len(os.listdir(path)) == subdirs


def post_in_background(server: Server, path: str, body: object) -> Callable[[], httpx.Response]:
    """POST ``body`` from a thread; returns a function waiting for the response."""
    answer: list[httpx.Response] = []

    def post() -> None:
        answer.append(httpx.post(server.url(path), json=body, timeout=STOP_TIMEOUT))

    thread = threading.Thread(target=post)
    thread.start()

    def response() -> httpx.Response:
        thread.join(STOP_TIMEOUT)
        return answer[0]

    return response


def outside(root_dir: Path) -> Path:
    return root_dir.parent / "outside"


def test_sigterm_during_an_inline_delete_stops_it_between_entries(root_dir: Path) -> None:
    # Trees big enough that, on a quiet machine too, the delete outlasts the first deadline.
    subdirs = 10 * SUBDIRS
    names = build_entries(root_dir, ENTRIES, subdirs)
    before_outside = snapshot(outside(root_dir))
    # A step deadline far off: a loaded machine must not turn the stop into a hurried one.
    env = {
        "STEPD_PURGE": "inline",
        "STEPD_SHUTDOWN_TIMEOUT": "0.05",
        "STEPD_SHUTDOWN_STEP_TIMEOUT": "60",
    }
    with serve(root_dir, env=env) as server:
        response = post_in_background(server, "/steps/delete", {"paths": names})
        wait_until(lambda: not whole(root_dir / names[0], subdirs))
        status = server.terminate()
        answer = response()

    problem = assert_problem(answer, 503, "shutting_down")
    assert answer.headers["x-request-id"]
    deleted = problem["deleted"]
    # The entry being removed when the stop came was finished; the rest were not begun.
    assert 1 <= len(deleted) < ENTRIES
    assert deleted == names[: len(deleted)]
    assert problem["partly"] == []
    assert not any((root_dir / name).exists() for name in deleted)
    assert all(whole(root_dir / name, subdirs) for name in names[len(deleted) :])
    assert status == 0
    assert snapshot(outside(root_dir)) == before_outside
    stopped = server.wait_for_line(lambda line: "batch stopped" in str(line.get("message")))
    assert f"after deleting {len(deleted)} entr" in stopped["message"]
    [access] = server.access_lines(answer.headers["x-request-id"])
    assert (access["status"], access["deleted"]) == (503, len(deleted))


def test_past_the_step_deadline_the_entry_being_removed_is_cut(root_dir: Path) -> None:
    # One tree big enough that, on a quiet machine too, its removal outlasts both deadlines.
    subdirs = 10 * ENTRIES * SUBDIRS
    [name] = build_entries(root_dir, 1, subdirs)
    env = {
        "STEPD_PURGE": "inline",
        "STEPD_SHUTDOWN_TIMEOUT": "0.05",
        "STEPD_SHUTDOWN_STEP_TIMEOUT": "0.05",
    }
    with serve(root_dir, env=env) as server:
        response = post_in_background(server, "/steps/delete", {"path": name})
        wait_until(lambda: not whole(root_dir / name, subdirs))
        status = server.terminate()
        answer = response()

    problem = assert_problem(answer, 503, "shutting_down")
    assert (problem["deleted"], problem["partly"]) == ([], [name])
    assert 0 < len(os.listdir(root_dir / name)) < subdirs
    assert status == 0


def test_sigterm_during_an_atomic_batch_rolls_it_back(root_dir: Path) -> None:
    # Each step stages one file and looks up paths that are absent: a batch of seconds.
    steps = [
        {"uses": "delete", "config": {"paths": [f"f{n}", *(f"no/such/x{m}" for m in range(300))]}}
        for n in range(150)
    ]
    for n in range(len(steps)):
        (root_dir / f"f{n}").write_text(f"file {n}\n")
    env = {"STEPD_SHUTDOWN_TIMEOUT": "0.1"}
    with serve(root_dir, env=env) as server:
        httpx.get(server.url("/readyz")).raise_for_status()  # the staging area is made
        before = snapshot(root_dir, exclude=(root_dir / ".stepd",), mtimes=True)
        before_outside = snapshot(outside(root_dir))
        response = post_in_background(server, "/steps/batch", {"atomic": True, "steps": steps})
        wait_until(lambda: not (root_dir / "f0").exists())
        status = server.terminate()
        answer = response()

    problem = assert_problem(answer, 503, "shutting_down")
    assert problem["rolledBack"] is True
    statuses = [step["status"] for step in problem["steps"]]
    stopped_at = statuses.index("Errored")
    assert stopped_at >= 1
    assert statuses[:stopped_at] == ["Succeeded"] * stopped_at
    assert set(statuses[stopped_at + 1 :]) <= {"Skipped"}
    assert problem["failedStep"] == problem["steps"][stopped_at]["as"]
    assert snapshot(root_dir, exclude=(root_dir / ".stepd",), mtimes=True) == before
    assert snapshot(outside(root_dir)) == before_outside
    assert status == 0
    stopped = server.wait_for_line(lambda line: "batch stopped" in str(line.get("message")))
    assert "rolled back" in stopped["message"]


# In process: the application's shutdown, with step work that will not stop.


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("obeys", [True, False], ids=["stops", "stuck"])
async def test_the_root_is_closed_only_once_no_thread_can_use_it(
    root_dir: Path, obeys: bool
) -> None:
    app = create_app(Settings(workspace_root=root_dir, shutdown_step_timeout=0.05))
    started, released = threading.Event(), threading.Event()

    def work(stop: Stop) -> int:
        started.set()
        while not released.wait(0.005):
            if obeys and stop.requested:
                break
        # Still the root: its descriptor was not closed (and its number not reused).
        return os.fstat(app.state.root.fd).st_ino

    async with app.router.lifespan_context(app):
        job = asyncio.create_task(app.state.step_pool.run(work))
        assert await asyncio.to_thread(started.wait, STOP_TIMEOUT)
    assert (app.state.root.fd >= 0) is not obeys
    released.set()
    assert await job == root_dir.stat().st_ino
