"""``stepd_client`` against a real stepd, sometimes through a flaky loopback proxy.

The proxy (``tests/support/proxy.py``) is a real HTTP server on 127.0.0.1: it fails the
first requests it gets (a 503 problem, or a connection closed without an answer), then
forwards to stepd, and records the headers of every request, so retries and their
``Idempotency-Key`` and ``X-Request-ID`` can be checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from stepd_client import (
    FAMILIES,
    AsyncStepdClient,
    BatchResult,
    DeleteResult,
    DeleteStep,
    InvalidPath,
    InvalidRequest,
    NotFound,
    ProblemError,
    RetryPolicy,
    StepdClient,
    StepdConnectionError,
    StepdError,
    Unavailable,
)
from stepd_client.retry import is_retryable

from app.api.problems import CATALOG
from tests.support.proxy import ReverseProxy
from tests.support.server import free_port

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)


@pytest.fixture
def proxy(live_server: str) -> Iterator[ReverseProxy]:
    """A proxy in front of the live server that fails nothing (tests may add faults)."""
    with ReverseProxy(live_server) as running:
        yield running


def test_delete_returns_the_result_model(live_server: str, root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    (root_dir / "out" / "a.yaml").write_text("x")
    with StepdClient(live_server) as client:
        result = client.delete("out", "gone")
    assert result == DeleteResult(deleted=["out"], absent=["gone"])
    assert not (root_dir / "out").exists()


def test_delete_in_a_workspace_with_globs(live_server: str, root_dir: Path) -> None:
    (root_dir / "promo-42" / "charts" / "web").mkdir(parents=True)
    (root_dir / "promo-42" / "charts" / "web" / "values-dev.yaml").write_text("x")
    (root_dir / "promo-42" / "charts" / "web" / "values-prod.yaml").write_text("x")
    with StepdClient(live_server) as client:
        result = client.delete("charts/*/values-dev.yaml", workspace="promo-42", globs=True)
    assert result.deleted == ["charts/web/values-dev.yaml"]
    assert (root_dir / "promo-42" / "charts" / "web" / "values-prod.yaml").exists()


def test_strict_absent_raises_not_found_without_retrying(proxy: ReverseProxy) -> None:
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


def test_5xx_is_retried_with_the_same_idempotency_key(proxy: ReverseProxy, root_dir: Path) -> None:
    (root_dir / "a1.txt").write_text("x")
    proxy.faults.extend(["503", "503"])
    with StepdClient(proxy.url, retry=FAST) as client:
        result = client.delete("a1.txt")
    assert result.deleted == ["a1.txt"]
    keys = proxy.keys()
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert keys[0]


def test_dropped_connections_are_retried_with_the_same_key(
    proxy: ReverseProxy, root_dir: Path
) -> None:
    (root_dir / "a2.txt").write_text("x")
    proxy.faults.extend(["close", "close"])
    with StepdClient(proxy.url, retry=FAST) as client:
        result = client.delete("a2.txt")
    assert result.deleted == ["a2.txt"]
    assert len(proxy.keys()) == 3
    assert len(set(proxy.keys())) == 1


def test_each_logical_call_has_its_own_key(proxy: ReverseProxy) -> None:
    with StepdClient(proxy.url, retry=FAST) as client:
        client.delete("a")
        client.delete("b")
        client.delete("c", idempotency_key="promotion-7-step-3")
    first, second, given = proxy.keys()
    assert first != second
    assert given == "promotion-7-step-3"


def test_gives_up_after_the_last_attempt_with_the_last_answer(proxy: ReverseProxy) -> None:
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


def test_bearer_token_is_sent(proxy: ReverseProxy) -> None:
    with StepdClient(proxy.url, token="s3cret") as client:
        client.delete("a")
    assert proxy.seen[0]["authorization"] == "Bearer s3cret"


@pytest.mark.anyio
async def test_async_client_deletes_and_retries_with_one_key(
    proxy: ReverseProxy, root_dir: Path
) -> None:
    (root_dir / "a3.txt").write_text("x")
    proxy.faults.extend(["close", "503"])
    async with AsyncStepdClient(proxy.url, retry=FAST) as client:
        result = await client.delete("a3.txt")
    assert result == DeleteResult(deleted=["a3.txt"], absent=[])
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
    steps = [DeleteStep("out", name="clean-out"), DeleteStep(["gone", "tmp/**"], globs=True)]
    with StepdClient(live_server) as client:
        result = client.batch(steps, workspace="promo-7", atomic=True)
    assert isinstance(result, BatchResult)
    assert [(step.name, step.status, step.deleted, step.absent) for step in result.steps] == [
        ("clean-out", "Succeeded", ["out"], []),
        ("step-1", "Succeeded", [], ["gone", "tmp/**"]),
    ]
    assert result.step("clean-out").deleted == ["out"]
    assert not (root_dir / "promo-7" / "out").exists()


def test_a_failed_atomic_batch_raises_with_every_step_and_rolls_back(
    live_server: str, root_dir: Path
) -> None:
    (root_dir / "promo-8" / "out").mkdir(parents=True)
    steps = [DeleteStep("out"), DeleteStep("gone", strict=True, name="must-exist")]
    with StepdClient(live_server) as client, pytest.raises(NotFound) as raised:
        client.batch(steps, workspace="promo-8", atomic=True)
    error = raised.value
    assert (error.failed_step, error.rolled_back) == ("must-exist", True)
    assert [(step.name, step.status) for step in error.steps] == [
        ("step-0", "Succeeded"),
        ("must-exist", "Failed"),
    ]
    failure = error.steps[1].error
    assert failure is not None
    assert failure.code == "not_found"
    assert (root_dir / "promo-8" / "out").is_dir()


def test_every_error_carries_its_request_id_status_and_problem(proxy: ReverseProxy) -> None:
    proxy.faults.append("503")
    with StepdClient(proxy.url, retry=FAST) as client, pytest.raises(NotFound) as raised:
        client.delete("gone", strict=True)
    error = raised.value
    sent = [headers["x-request-id"] for headers in proxy.seen]
    assert len(sent) == 2
    assert len(set(sent)) == 1
    assert error.request_id == sent[0]
    assert error.response is not None
    assert error.response.headers["X-Request-ID"] == sent[0]
    assert error.status == 404
    assert error.problem["code"] == "not_found"


def test_a_connection_error_carries_the_request_id_it_sent() -> None:
    with (
        StepdClient(f"http://127.0.0.1:{free_port()}", retry=FAST) as client,
        pytest.raises(StepdConnectionError) as raised,
    ):
        client.delete("a")
    assert raised.value.request_id
    assert (raised.value.status, raised.value.problem, raised.value.response) == (None, None, None)


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.delete(),
        lambda client: client.delete("a", strict="yes"),
        lambda client: client.batch([]),
        lambda client: client.batch([DeleteStep([])]),
        lambda client: client.batch(["not a step"]),
    ],
    ids=["no-paths", "strict-not-bool", "no-steps", "step-without-paths", "not-a-step"],
)
def test_arguments_that_make_no_request_raise_invalid_request_unsent(
    proxy: ReverseProxy, call: Callable[[StepdClient], object]
) -> None:
    with StepdClient(proxy.url) as client, pytest.raises(InvalidRequest) as raised:
        call(client)
    error = raised.value
    assert (error.code, error.status, error.request_id, error.response) == (
        "invalid_request",
        None,
        None,
        None,
    )
    assert error.problem["errors"]
    assert proxy.seen == []


def test_a_bad_workspace_is_the_servers_call_the_same_for_delete_and_batch(
    live_server: str,
) -> None:
    with StepdClient(live_server) as client:
        with pytest.raises(InvalidPath) as single:
            client.delete("a", workspace="../nope")
        with pytest.raises(InvalidPath) as batch:
            client.batch([DeleteStep("a")], workspace="../nope")
    assert single.value.code == batch.value.code == "invalid_path"
    assert single.value.request_id
    assert batch.value.request_id


def test_an_http_client_of_ones_own_is_used_and_left_open(live_server: str, root_dir: Path) -> None:
    (root_dir / "a4.txt").write_text("x")
    with ReverseProxy(live_server, prefix="/tools/stepd") as proxy:
        seen: list[str] = []
        own = httpx.Client(event_hooks={"request": [lambda request: seen.append(str(request.url))]})
        with own, StepdClient(proxy.url, http_client=own) as client:
            assert client.delete("a4.txt").deleted == ["a4.txt"]
            client.close()
            assert not own.is_closed
    assert seen == [f"{proxy.url}/steps/delete"]


def test_tls_options_and_an_http_client_of_ones_own_do_not_mix() -> None:
    with httpx.Client() as own, pytest.raises(ValueError, match="http_client"):
        StepdClient("https://stepd.example", http_client=own, verify=False)
