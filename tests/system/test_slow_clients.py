"""Slow clients cannot hold the door: 200 connections that send one header byte per second
while a normal client is served at once, and each trickler closed at the header timeout.

Run with ``-s`` to see the figures (the normal client's answer times, the tricklers'
close times).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import Server, serve

TRICKLERS = 200
HEADER_TIMEOUT = 2.0
# What each trickler would send, one byte a second, if it were let.
HEAD = b"GET /healthz HTTP/1.1\r\nHost: stepd\r\nX-Trickle: " + b"z" * 64 + b"\r\n\r\n"
# Allowance for the answers to 200 connections whose timers fire at once on a busy
# machine: the check is that they are closed at the timeout, not long after.
SLACK = 1.0


@dataclass
class Trickler:
    sock: socket.socket
    opened: float
    sent: int = 0
    received: bytes = b""
    closed: float | None = None

    @property
    def status(self) -> int | None:
        first_line = self.received.split(b"\r\n", 1)[0].split()
        return int(first_line[1]) if len(first_line) > 1 else None


def trickle(server: Server, deadline: float) -> list[Trickler]:
    """Open ``TRICKLERS`` connections and send each one header byte a second until the
    server closes it (or ``deadline`` seconds pass)."""
    tricklers = []
    selector = selectors.DefaultSelector()
    for _ in range(TRICKLERS):
        sock = server.connect()
        sock.setblocking(False)
        trickler = Trickler(sock, time.monotonic())
        selector.register(sock, selectors.EVENT_READ, trickler)
        tricklers.append(trickler)
    open_ones = set(range(TRICKLERS))
    next_byte = time.monotonic()
    end = time.monotonic() + deadline
    while open_ones and time.monotonic() < end:
        if time.monotonic() >= next_byte:
            for index in list(open_ones):
                trickler = tricklers[index]
                try:
                    trickler.sock.send(HEAD[trickler.sent : trickler.sent + 1])
                    trickler.sent += 1
                except OSError:
                    pass  # closed by the server: the read below tells when
            next_byte += 1.0
        for key, _ in selector.select(timeout=0.005):
            trickler = key.data
            try:
                data = trickler.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                trickler.received += data
                continue
            trickler.closed = time.monotonic()
            selector.unregister(trickler.sock)
            trickler.sock.close()
            open_ones.discard(tricklers.index(trickler))
    for index in open_ones:
        tricklers[index].sock.close()
    selector.close()
    return tricklers


def test_tricklers_do_not_keep_a_normal_client_waiting(root_dir: Path) -> None:
    (root_dir / "target").write_text("x")
    env = {"STEPD_HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    with serve(root_dir, env=env) as server:
        result: list[list[Trickler]] = []
        thread = threading.Thread(
            target=lambda: result.append(trickle(server, 10 * HEADER_TIMEOUT))
        )
        thread.start()
        times = []
        try:
            # While every trickler is connected and trickling: a probe and a step.
            time.sleep(HEADER_TIMEOUT / 2)
            for method, path, body in [
                ("GET", "/healthz", None),
                ("POST", "/steps/delete", {"path": "target"}),
                ("GET", "/readyz", None),
            ]:
                start = time.perf_counter()
                response = httpx.request(method, server.url(path), json=body, timeout=10)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
        finally:
            thread.join()
        [tricklers] = result
    print(
        f"\nnormal client, while {TRICKLERS} tricklers: "
        + ", ".join(f"{t * 1000:.1f} ms" for t in times)
    )
    assert max(times) < 1.0
    assert not (root_dir / "target").exists()
    lifetimes = [t.closed - t.opened for t in tricklers if t.closed is not None]
    assert len(lifetimes) == TRICKLERS, "some tricklers were never closed"
    print(
        f"tricklers closed after {min(lifetimes):.2f} to {max(lifetimes):.2f} s "
        f"(header timeout {HEADER_TIMEOUT:g} s)"
    )
    assert min(lifetimes) >= HEADER_TIMEOUT - 0.1
    assert max(lifetimes) <= HEADER_TIMEOUT + SLACK
    assert {t.status for t in tricklers} == {408}
    assert all(b"application/problem+json" in t.received for t in tricklers)
    assert all(b"x-request-id" in t.received.lower() for t in tricklers)
