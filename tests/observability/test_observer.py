"""The request observer around an application that is cancelled mid-request: what the
client gets then (uvicorn cancels requests still running when a shutdown times out)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.observability.metrics import UNMATCHED_ROUTE, Metrics
from app.observability.middleware import RequestObserver

pytestmark = pytest.mark.anyio

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/steps/delete",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"x-request-id", b"cut-1")],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def cancelled_while(
    metrics: Metrics, app_starts_answering: bool
) -> tuple[asyncio.Task[None], list[Message]]:
    """Run an observed application that hangs (after starting its answer, or before) and
    cancel it there; the task and what was sent."""
    hanging = asyncio.Event()
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if app_starts_answering:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        hanging.set()
        await asyncio.Event().wait()

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.create_task(RequestObserver(app, metrics)(dict(SCOPE), receive, send))
    await hanging.wait()
    task.cancel()
    await asyncio.wait([task])
    return task, sent


async def test_a_request_cancelled_before_it_answered_gets_a_shutting_down_problem() -> None:
    metrics = Metrics()
    task, sent = await cancelled_while(metrics, app_starts_answering=False)
    assert not task.cancelled()
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"x-request-id"] == b"cut-1"
    assert headers[b"retry-after"] == b"1"
    assert headers[b"connection"] == b"close"
    assert json.loads(body["body"])["code"] == "shutting_down"
    labels = {"method": "POST", "route": UNMATCHED_ROUTE, "status": "503"}
    assert metrics.registry.get_sample_value("stepd_http_requests_total", labels) == 1


async def test_a_request_cancelled_after_it_began_answering_is_cut_off() -> None:
    task, sent = await cancelled_while(Metrics(), app_starts_answering=True)
    assert task.cancelled()
    assert [message["status"] for message in sent] == [200]
