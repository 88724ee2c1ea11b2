"""The request observer: pure ASGI middleware around the whole application.

For each HTTP request it settles the request id, answers it in ``X-Request-ID`` on every
response (Starlette's own 500s included, as it sits outside them), counts and times the
request in the metrics, and logs one line when the response is done, with the caller the
authentication noted (a token's name, ``anonymous``, or null when refused). Pure ASGI
rather than ``BaseHTTPMiddleware``: no extra task per request and streaming left alone.
It never reads bodies, and logs no header but the request id.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import UNMATCHED_ROUTE, Metrics
from app.observability.record import recording
from app.observability.request_id import HEADER, request_id

log = logging.getLogger("stepd.access")

_HEADER_KEY = HEADER.lower().encode("latin-1")


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/steps/delete``), never the raw
    path; ``<unmatched>`` when no route did."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestObserver:
    """Request id, metrics and the access log line for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # 500 unless the application starts a response: what the server answers then.
        status = 500
        with recording(request_id(scope["headers"])) as record:
            id_header = (_HEADER_KEY, record.request_id.encode("ascii"))

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message = {**message, "headers": [*message.get("headers", ()), id_header]}
                await send(message)

            self.metrics.started += 1
            self.metrics.in_progress.inc()
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self.metrics.in_progress.dec()
                seconds = time.perf_counter() - start
                route = route_template(scope)
                self.metrics.observe(scope["method"], route, status, seconds, record)
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                        "request_id": record.request_id,
                        "caller": record.caller,
                        **record.outcome(),
                    },
                )
