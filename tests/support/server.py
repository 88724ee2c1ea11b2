"""A real ``stepd serve`` (or any command that runs it) in a subprocess: the one harness.

The server listens on a port the kernel picks (``--port 0``), read back from uvicorn's
start-up line, so tests running side by side never collide. Everything the process
writes (stdout and stderr, one stream) is read by a thread as it comes, so a chatty
server can never block on a full pipe, and kept as lines, parsed as JSON where they are
JSON. Every wait is bounded: a server that does not start, or does not stop, fails the
test with what it wrote instead of hanging it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

# Generous bounds that only keep a broken test from hanging, never measure anything.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

# stepd's start-up line, logged once it serves (``app.cli.startup_line``).
_LISTENING = re.compile(r"stepd \S+ serving (https?)://(\S+):(\d+)")

Line = dict[str, Any]


# ``stepd serve``, as this interpreter runs it.
SERVE = (sys.executable, "-m", "app", "serve")


def stepd_command(root: Path | None, *args: str, host: str = "127.0.0.1") -> list[str]:
    """``stepd serve`` on ``host``, port 0, over ``root`` (None: from the environment),
    with ``args`` after."""
    command = [*SERVE, "--host", host, "--port", "0"]
    if root is not None:
        command += ["--workspace-root", str(root)]
    return [*command, *args]


def clean_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``STEPD_*`` variable, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEPD_")}
    return {**clean, **(env or {})}


def _text(line: Line) -> str:
    """A line's message, whether it was written as JSON or for humans."""
    return str(line.get("message", line.get("raw", "")))


class Server:
    """A running server process and the lines it has written so far.

    ``port`` is the one it listens on; ``url(path)`` names it on 127.0.0.1.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[Line] = []
        self._written: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            started = self.wait_for_line(lambda line: _LISTENING.search(_text(line)))
        except AssertionError:
            self.kill()
            raise RuntimeError(
                f"stepd did not start (exit status {process.poll()}):\n{self.output()}"
            ) from None
        listening = _LISTENING.search(_text(started))
        assert listening is not None
        self.port = int(listening.group(3))
        self.base_url = f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Server:
        """Run ``command`` with ``env`` as its whole environment (default:
        ``clean_environment()``); return once it listens."""
        process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else clean_environment(),
            cwd=cwd,
            preexec_fn=preexec_fn,
        )
        return cls(process)

    def url(self, path: str = "", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def client(self, timeout: float = 60.0) -> httpx.Client:
        """An HTTP client for this server (the timeout only guards against a hang)."""
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def connect(self) -> socket.socket:
        """A raw TCP connection, with a generous timeout on every read."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=STOP_TIMEOUT)

    def output(self) -> str:
        """Everything the process wrote so far, as text."""
        with self._changed:
            return "".join(self._written)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for_line(self, matches: Callable[[Line], object]) -> Line:
        """The first line that ``matches``, waiting (boundedly) for it to be written."""

        def found() -> Line | None:
            return next((line for line in self.lines if matches(line)), None)

        with self._changed:
            self._changed.wait_for(
                lambda: found() is not None or not self._reader.is_alive(), START_TIMEOUT
            )
            line = found()
        assert line is not None, f"no such line; the server wrote {self.lines}"
        return line

    def access_lines(self, request_id: str) -> list[Line]:
        """The access log lines of the request ``request_id``, once it has been logged."""

        def ours(line: Line) -> bool:
            return line.get("logger") == "stepd.access" and line.get("request_id") == request_id

        self.wait_for_line(ours)
        with self._changed:
            return [line for line in self.lines if ours(line)]

    def wait(self) -> int:
        """Wait for the process to exit and for all it wrote to be read; its exit status."""
        status = self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        return status

    def terminate(self) -> int:
        """SIGTERM, then wait for the process to exit; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind; returns once the process is gone."""
        self.process.kill()
        self.wait()

    def stop(self) -> None:
        """SIGTERM if it still runs, SIGKILL if it does not stop in time."""
        if self.alive():
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()
        self.wait()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for text in self.process.stdout:
                try:
                    line = json.loads(text)
                except ValueError:
                    line = None
                with self._changed:
                    self._written.append(text)
                    self.lines.append(line if isinstance(line, dict) else {"raw": text})
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()


@contextmanager
def running(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[Server]:
    """``Server.start(command, ...)`` for the block; stopped afterwards, whatever happens."""
    server = Server.start(command, env=env, cwd=cwd, preexec_fn=preexec_fn)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve(
    root: Path | None,
    *args: str,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[Server]:
    """``stepd serve`` over ``root`` with ``args``, in ``clean_environment(env)``."""
    command = stepd_command(root, *args, host=host)
    with running(command, env=clean_environment(env), cwd=cwd, preexec_fn=preexec_fn) as server:
        yield server


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for what must be told
    its port in advance (a container's environment, a client aimed at nothing)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
