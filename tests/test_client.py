"""``app.client`` against a real stepd, sometimes through a flaky loopback proxy.

The proxy is a real HTTP server on 127.0.0.1: it fails the first requests it gets (a 503
problem, or a connection closed without an answer), then forwards to stepd, and records
the headers of every request, so retries and their ``Idempotency-Key`` can be checked.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

import httpx
import pytest

from app.api.problems import CATALOG, problem_example
from app.client import (
    FAMILIES,
    AsyncStepdClient,
    BatchStep,
    InvalidPath,
    NotFound,
    ProblemError,
    RetryPolicy,
    StepdClient,
    StepdConnectionError,
    StepdError,
    Unavailable,
    is_retryable,
)
from app.models.batch import BatchResultV1
from app.models.v1 import DeleteResultV1
from tests.support.server import free_port

Fault = Literal["503", "close"]
FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)
FORWARDED = ("content-type", "authorization", "idempotency-key")


class FlakyProxy:
    """Fails the first requests as ``faults`` says, then forwards them to ``upstream``."""

    def __init__(self, upstream: str, faults: list[Fault]) -> None:
        self.upstream = upstream
        self.faults = deque(faults)
        self.seen: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keys(self) -> list[str]:
        """The ``Idempotency-Key`` of every request received, in order."""
        return [headers.get("idempotency-key", "") for headers in self.seen]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with proxy.lock:
                    proxy.seen.append({k.lower(): v for k, v in self.headers.items()})
                    fault = proxy.faults.popleft() if proxy.faults else None
                if fault == "close":
                    self.close_connection = True
                    return
                if fault == "503":
                    self._answer(503, "application/problem+json", _not_ready())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED}
                answer = httpx.post(proxy.upstream + self.path, content=body, headers=headers)
                self._answer(answer.status_code, answer.headers["content-type"], answer.content)

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read ``proxy.seen`` instead."""

        return Handler

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _not_ready() -> bytes:
    return json.dumps(problem_example("not_ready")).encode()


@pytest.fixture
def proxy(live_server: str) -> Iterator[FlakyProxy]:
    """A proxy in front of the live server that fails nothing (tests may add faults)."""
    with FlakyProxy(live_server, []) as running:
        yield running


def test_delete_returns_the_result_model(live_server: str, root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    (root_dir / "out" / "a.yaml").write_text("x")
    with StepdClient(live_server) as client:
        result = client.delete("out", "gone")
    assert result == DeleteResultV1(deleted=["out"], absent=["gone"])
    assert not (root_dir / "out").exists()


def test_delete_in_a_workspace_with_globs(live_server: str, root_dir: Path) -> None:
    (root_dir / "promo-42" / "charts" / "web").mkdir(parents=True)
    (root_dir / "promo-42" / "charts" / "web" / "values-dev.yaml").write_text("x")
    (root_dir / "promo-42" / "charts" / "web" / "values-prod.yaml").write_text("x")
    with StepdClient(live_server) as client:
        result = client.delete("charts/*/values-dev.yaml", workspace="promo-42", globs=True)
    assert result.deleted == ["charts/web/values-dev.yaml"]
    assert (root_dir / "promo-42" / "charts" / "web" / "values-prod.yaml").exists()


def test_strict_absent_raises_not_found_without_retrying(proxy: FlakyProxy) -> None:
    with StepdClient(proxy.url, retry=FAST) as client, pytest.raises(NotFound) as raised:
        client.delete("gone", strict=True)
    error = raised.value
    assert isinstance(error, ProblemError)
    assert isinstance(error, StepdError)
    assert (error.code, error.status) == ("not_found", 404)
    assert "gone" in error.detail
    assert error.problem["missing"] == ["gone"]
    assert len(proxy.seen) == 1


def test_escape_raises_invalid_path(live_server: str, root_dir: Path) -> None:
    with StepdClient(live_server) as client, pytest.raises(InvalidPath) as raised:
        client.delete("../outside/precious.txt")
    assert raised.value.code == "path_outside_workspace"
    assert (root_dir.parent / "outside" / "precious.txt").exists()


def test_5xx_is_retried_with_the_same_idempotency_key(proxy: FlakyProxy, root_dir: Path) -> None:
    (root_dir / "a.txt").write_text("x")
    proxy.faults.extend(["503", "503"])
    with StepdClient(proxy.url, retry=FAST) as client:
        result = client.delete("a.txt")
    assert result.deleted == ["a.txt"]
    keys = proxy.keys()
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert keys[0]


def test_dropped_connections_are_retried_with_the_same_key(
    proxy: FlakyProxy, root_dir: Path
) -> None:
    (root_dir / "a.txt").write_text("x")
    proxy.faults.extend(["close", "close"])
    with StepdClient(proxy.url, retry=FAST) as client:
        result = client.delete("a.txt")
    assert result.deleted == ["a.txt"]
    assert len(proxy.keys()) == 3
    assert len(set(proxy.keys())) == 1


def test_each_logical_call_has_its_own_key(proxy: FlakyProxy) -> None:
    with StepdClient(proxy.url, retry=FAST) as client:
        client.delete("a")
        client.delete("b")
        client.delete("c", idempotency_key="promotion-7-step-3")
    first, second, given = proxy.keys()
    assert first != second
    assert given == "promotion-7-step-3"


def test_gives_up_after_the_last_attempt_with_the_last_answer(proxy: FlakyProxy) -> None:
    proxy.faults.extend(["503"] * FAST.attempts)
    with StepdClient(proxy.url, retry=FAST) as client, pytest.raises(Unavailable) as raised:
        client.delete("a")
    assert (raised.value.status, raised.value.code) == (503, "not_ready")
    assert len(proxy.seen) == FAST.attempts
    assert len(set(proxy.keys())) == 1


def test_nothing_listening_raises_connection_error() -> None:
    with (
        StepdClient(f"http://127.0.0.1:{free_port()}", retry=FAST) as client,
        pytest.raises(StepdConnectionError),
    ):
        client.delete("a")


def test_bearer_token_is_sent(proxy: FlakyProxy) -> None:
    with StepdClient(proxy.url, token="s3cret") as client:
        client.delete("a")
    assert proxy.seen[0]["authorization"] == "Bearer s3cret"


@pytest.mark.anyio
async def test_async_client_deletes_and_retries_with_one_key(
    proxy: FlakyProxy, root_dir: Path
) -> None:
    (root_dir / "a.txt").write_text("x")
    proxy.faults.extend(["close", "503"])
    async with AsyncStepdClient(proxy.url, retry=FAST) as client:
        result = await client.delete("a.txt")
    assert result == DeleteResultV1(deleted=["a.txt"], absent=[])
    assert len(proxy.keys()) == 3
    assert len(set(proxy.keys())) == 1


@pytest.mark.anyio
async def test_async_client_raises_typed_problems(live_server: str) -> None:
    async with AsyncStepdClient(live_server) as client:
        with pytest.raises(NotFound) as raised:
            await client.delete("gone", strict=True)
    assert raised.value.problem["code"] == "not_found"


def test_every_problem_code_has_a_typed_error() -> None:
    assert set(CATALOG) <= set(FAMILIES)


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (503, {"code": "not_ready"}, True),
        (500, {"code": "internal"}, True),
        (409, {"code": "idempotency_key_in_flight"}, True),
        (409, {"code": "busy"}, False),
        (404, {"code": "not_found"}, False),
        (409, None, False),
    ],
)
def test_what_is_retried(status: int, body: dict[str, str] | None, retryable: bool) -> None:
    response = httpx.Response(status, json=body) if body else httpx.Response(status)
    assert is_retryable(response) is retryable


def test_batch_returns_the_result_model(live_server: str, root_dir: Path) -> None:
    (root_dir / "promo-7" / "out").mkdir(parents=True)
    steps = [
        BatchStep(uses="delete", as_="clean-out", config={"path": "out"}),
        BatchStep(uses="delete", config={"paths": ["gone"]}),
    ]
    with StepdClient(live_server) as client:
        result = client.batch(steps, workspace="promo-7", atomic=True)
    assert isinstance(result, BatchResultV1)
    assert [(step.alias, step.status, step.deleted, step.absent) for step in result.steps] == [
        ("clean-out", "Succeeded", ["out"], []),
        ("step-1", "Succeeded", [], ["gone"]),
    ]
    assert not (root_dir / "promo-7" / "out").exists()


def test_a_failed_atomic_batch_raises_with_every_step_and_rolls_back(
    live_server: str, root_dir: Path
) -> None:
    (root_dir / "promo-8" / "out").mkdir(parents=True)
    steps = [
        BatchStep(uses="delete", config={"path": "out"}),
        BatchStep(uses="delete", as_="must-exist", config={"path": "gone", "strict": True}),
    ]
    with StepdClient(live_server) as client, pytest.raises(NotFound) as raised:
        client.batch(steps, workspace="promo-8", atomic=True)
    problem = raised.value.problem
    assert (problem["failedStep"], problem["rolledBack"]) == ("must-exist", True)
    assert [step["status"] for step in problem["steps"]] == ["Succeeded", "Failed"]
    assert (root_dir / "promo-8" / "out").is_dir()
