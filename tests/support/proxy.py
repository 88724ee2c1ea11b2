"""A reverse proxy on 127.0.0.1 in front of a real stepd, like the ones operators put there.

It serves under ``prefix`` and strips it before forwarding (as ``kubectl proxy`` or an
ingress with a rewrite does); it can speak HTTPS with a given context (one that requires
client certificates, say, as an ingress doing mutual TLS); it can fail the first requests
as ``faults`` says (a 503 problem, or a connection closed without an answer); and it
records the headers of every request it receives, so retries and their keys can be read.
``ConnectionCounter`` relays bytes and counts connections, TLS left to the ends.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import httpx

from app.api.problems import problem_example

Fault = Literal["503", "close"]
# Headers that belong to one connection, not to the request or response (RFC 9110 7.6.1),
# and those the forwarding itself recomputes.
NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
    | {"content-encoding", "accept-encoding", "date", "server"}
)


class ReverseProxy:
    """Forwards ``<url>/<path>`` to ``<upstream>/<path>``; see the module docstring."""

    def __init__(
        self,
        upstream: str,
        *,
        prefix: str = "",
        faults: Iterable[Fault] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = upstream
        self.prefix = prefix
        self.faults: deque[Fault] = deque(faults)
        self.seen: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}{prefix}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keys(self) -> list[str]:
        """The ``Idempotency-Key`` of every request received, in order."""
        return [headers.get("idempotency-key", "") for headers in self.seen]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with proxy.lock:
                    proxy.seen.append({k.lower(): v for k, v in self.headers.items()})
                    fault = proxy.faults.popleft() if proxy.faults else None
                if fault == "close":
                    self.close_connection = True
                    return
                if fault == "503":
                    problem = json.dumps(problem_example("not_ready")).encode()
                    self._answer(503, [("content-type", "application/problem+json")], problem)
                    return
                if not self.path.startswith(proxy.prefix + "/"):
                    self._answer(404, [("content-type", "text/plain")], b"not under the prefix")
                    return
                answer = httpx.request(
                    self.command,
                    proxy.upstream + self.path.removeprefix(proxy.prefix),
                    content=body,
                    headers=_forwarded(self.headers.items()),
                )
                self._answer(answer.status_code, _forwarded(answer.headers.items()), answer.content)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read ``proxy.seen`` instead."""

        return Handler

    def __enter__(self) -> ReverseProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _forwarded(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() not in NOT_FORWARDED]


class ConnectionCounter:
    """Relays TCP connections to ``upstream_port`` on 127.0.0.1, byte for byte (TLS goes
    through untouched), and counts them: how many attempts a client made."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]

    def url(self, path: str = "", scheme: str = "https") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            relay = threading.Thread(target=_relay, args=(client, self.upstream_port))
            self.threads.append(relay)
            relay.start()

    def __enter__(self) -> ConnectionCounter:
        self.threads[0].start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # shutdown, not just close, wakes the accept() that the thread is blocked in.
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for thread in self.threads:
            thread.join()


def _relay(client: socket.socket, upstream_port: int) -> None:
    """Both directions of one connection, until each side has closed its own."""
    with client, socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
        back = threading.Thread(target=_pipe, args=(upstream, client))
        back.start()
        _pipe(client, upstream)
        back.join()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
