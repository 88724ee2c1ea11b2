"""The request observer: pure ASGI middleware around the whole application.

For each HTTP request it settles the request id, answers it in ``X-Request-ID`` on every
response (Starlette's own 500s included, as it sits outside them), counts and times the
request in the metrics, and logs one line when the response is done, with the caller the
authentication noted (a token's name, ``anonymous``, or null when refused). Pure ASGI
rather than ``BaseHTTPMiddleware``: no extra task per request and streaming left alone.
It never reads bodies, and logs no header but the request id.

A request answered before routing (401, 413, 415, an over-limit 503...) is counted under
the route its path matches all the same; ``<unmatched>`` is for paths no route matches.
A request cancelled before it answered (uvicorn cancels what still runs when the
shutdown timeout is over) is answered here, ``503 shutting_down``, instead of uvicorn's
bare 500. The connection's own answers (``app.api.protocol``) come through here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.pool import uncancel
from app.api.problems import closing_problem
from app.observability.metrics import UNMATCHED_ROUTE, Metrics
from app.observability.record import recording
from app.observability.request_id import HEADER, request_id

log = logging.getLogger("stepd.access")

_HEADER_KEY = HEADER.lower().encode("latin-1")


def route_template(
    scope: Scope, routes: Sequence[BaseRoute] = (), arrived: tuple[str, str] | None = None
) -> str:
    """The template of the route that served ``scope`` (``/steps/delete``), never the raw
    path; else of the first of ``routes`` its path and method match (a request answered
    before routing, or by a mounted app), of the first its path matches (a 405), or
    ``<unmatched>``. ``arrived``: the path and root path the request came with (a mount
    changes them in ``scope``)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    if arrived is not None:
        scope = {**scope, "path": arrived[0], "root_path": arrived[1]}
    partial = UNMATCHED_ROUTE
    for route in _flat(routes):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", UNMATCHED_ROUTE)
        if match is Match.PARTIAL and partial == UNMATCHED_ROUTE:
            partial = getattr(route, "path", UNMATCHED_ROUTE)
    return partial


def _flat(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """``routes`` with those of included routers in their place: FastAPI keeps an
    included router whole (``original_router``; stepd includes none under a prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is None:
            yield route
        else:
            yield from _flat(included.routes)


class RequestObserver:
    """Request id, metrics and the access log line for every HTTP request; ``routes``
    are the application's, for requests answered before routing."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        arrived = (scope["path"], scope.get("root_path", ""))
        # 500 unless the application starts a response: what the server answers then.
        status = 500
        started = False
        with recording(request_id(scope["headers"])) as record:
            id_header = (_HEADER_KEY, record.request_id.encode("ascii"))

            async def send_with_id(message: Message) -> None:
                nonlocal status, started
                if message["type"] == "http.response.start":
                    status = message["status"]
                    started = True
                    message = {**message, "headers": [*message.get("headers", ()), id_header]}
                await send(message)

            self.metrics.started += 1
            self.metrics.in_progress.inc()
            try:
                await self.app(scope, receive, send_with_id)
            except asyncio.CancelledError:
                if started:
                    raise
                uncancel()
                detail = "the service is shutting down; the request was not completed"
                await closing_problem("shutting_down", detail)(scope, receive, send_with_id)
            finally:
                self.metrics.in_progress.dec()
                seconds = time.perf_counter() - start
                route = route_template(scope, self.routes, arrived)
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
