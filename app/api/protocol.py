"""The HTTP/1.1 connection: uvicorn's h11 protocol, with stepd's limits and answers.

What only the connection can do, since the application never sees these requests:

* **Header timeout.** The request line and headers must arrive within
  ``STEPD_HEADER_TIMEOUT`` seconds, counted from the connection (first request) or from
  the first byte of the next one (keep-alive). Otherwise: ``408 request_timeout`` and
  the connection closes; a connection that sent nothing at all is just closed. uvicorn
  times out bodies and idle connections, but not a client trickling its headers, which
  would hold its connection for as long as it likes.
* **Admission.** Past ``STEPD_MAX_CONCURRENCY`` requests being served, or
  ``STEPD_MAX_CONNECTIONS`` open connections, a request is answered ``503 overloaded``
  (with ``Retry-After``) at once, without reaching the routes, and its connection closes.
  ``/healthz`` is always admitted: a liveness probe must not fail because of load.
  Connections still sending their headers do not count as requests, so clients too slow
  to finish theirs cannot shut the others out.
* **Malformed requests.** A head over ``STEPD_MAX_HEADER_BYTES`` is ``431
  headers_too_large``; other invalid HTTP, ``400 http_error``.

Each of these answers is made by ``answer`` (see ``app.main``): an RFC 9457 problem that
goes through the request observer, so it carries ``X-Request-ID`` and is counted and
logged like every other. A protocol subclass rather than ASGI middleware because a
request whose head never completes never reaches ASGI, and uvicorn's own answers to bad
requests and to its concurrency limit are plain text written by the protocol.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from app.api.problems import closing_problem

# ``answer(code, detail)``: an ASGI app answering the problem ``code``, connection closed.
Answer = Callable[[str, str], ASGIApp]

ALWAYS_ADMITTED = frozenset({"/healthz"})
# What a request stands for in the log and the metrics when its head never arrived whole.
UNKNOWN = "-"


@dataclass(frozen=True)
class ConnectionLimits:
    """What ``ConnectionProtocol`` enforces, and how it answers."""

    header_timeout: float
    max_requests: int
    max_connections: int
    max_header_bytes: int
    answer: Answer


class ConnectionProtocol(H11Protocol):
    """uvicorn's h11 protocol with stepd's limits (see the module doc); made for one
    application by ``protocol_class``."""

    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._app = self.app
        self.app = self._admit
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False
        self._answered = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # the connection is closing with our answer; the rest is not read
        if self.conn.their_state is h11.IDLE:
            self._head_begun = True
            if self._head_timer is None:
                self._arm_head_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if (
            self.conn.their_state is h11.IDLE
            and self.conn.trailing_data[0]
            and not self.transport.is_closing()
        ):
            # The next request had begun to arrive with this one (pipelined): its head is
            # timed from now, not left to the idle keep-alive timeout.
            self._unset_keepalive_if_required()
            self._head_begun = True
            self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this while handling h11's ``RemoteProtocolError``."""
        if self.cycle is not None and not self.cycle.response_complete:
            # The body of a request being served broke its framing: that request is
            # answered by the application, which now sees the client gone.
            self.transport.close()
            return
        error = sys.exc_info()[1]
        if isinstance(error, h11.RemoteProtocolError) and error.error_status_hint == 431:
            limit = self.limits.max_header_bytes
            detail = f"the request line and headers are larger than {limit} bytes"
            self._answer("headers_too_large", detail)
        else:
            self._answer("http_error", "the request is not valid HTTP/1.1")

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope)
        app = self._app if refusal is None else self.limits.answer("overloaded", refusal)
        await app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request of ``scope`` is not admitted; None when it is."""
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if path.removeprefix(root_path) in ALWAYS_ADMITTED:
            return None
        # This request's own task and connection are among those counted.
        if len(self.tasks) > self.limits.max_requests:
            return f"more than {self.limits.max_requests} requests at once; retry shortly"
        if len(self.connections) > self.limits.max_connections:
            return f"more than {self.limits.max_connections} connections open; retry shortly"
        return None

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        if not self._head_begun:
            # Nothing sent at all: closed as an idle keep-alive connection would be.
            self.conn.send(h11.ConnectionClosed())
            self.transport.close()
            return
        timeout = self.limits.header_timeout
        detail = f"the request line and headers did not arrive within {timeout:g} seconds"
        self._answer("request_timeout", detail)

    def _answer(self, code: str, detail: str) -> None:
        """Answer the problem ``code`` to a request whose head never arrived whole, then
        close: as a request of its own, so that it is logged and counted."""
        self._answered = True
        self._disarm_head_timer()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": UNKNOWN,
            "root_path": self.root_path,
            "path": UNKNOWN,
            "raw_path": UNKNOWN.encode(),
            "query_string": b"",
            "headers": [],
            "state": self.app_state.copy(),
        }
        cycle = RequestResponseCycle(
            scope=scope,  # type: ignore[arg-type]
            conn=self.conn,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            on_response=lambda: None,
        )
        cycle.keep_alive = False
        cycle.more_body = False
        self.cycle = cycle
        app = self.limits.answer(code, detail)
        task = self.loop.create_task(cycle.run_asgi(app))  # type: ignore[arg-type]
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


def protocol_class(limits: ConnectionLimits) -> type[ConnectionProtocol]:
    """A ``ConnectionProtocol`` enforcing ``limits``, for uvicorn's ``http`` option."""

    class Protocol(ConnectionProtocol):
        pass

    Protocol.limits = limits
    return Protocol


def bare_answer(code: str, detail: str) -> ASGIApp:
    """The problem ``code``, connection closed, made when the answer is sent; an
    application wraps it in its request observer (``app.main.connection_answers``)."""

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        await closing_problem(code, detail)(scope, receive, send)

    return respond
