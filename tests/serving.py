"""A real ``stepd serve`` in a subprocess on a free loopback port, and raw-socket HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str = "", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stepd(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m app`` with ``args``, in a clean ``STEPD_*`` environment plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEPD_")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            env={**clean, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def serve(
    root: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    host: str = "127.0.0.1",
) -> Iterator[Server]:
    """Start ``stepd serve`` over ``root``; yield once it accepts connections; stop it."""
    port = free_port()
    command = ["serve", "--host", host, "--port", str(port), "--workspace-root", str(root)]
    process = stepd([*command, *args], env or {}, log)
    server = Server(process, port, log)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_listening(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"stepd exited early:\n{server.output()}")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"stepd did not start listening:\n{server.output()}")


def connect(server: Server) -> socket.socket:
    """A raw TCP connection to ``server``, with a generous timeout on every read."""
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response until the server closes: status, headers (lower-cased), body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
