"""A real stepd server for tests: ``python -m app serve`` in a subprocess.

It listens on 127.0.0.1 on a port the kernel picks (``--port 0``, read back from
uvicorn's start-up log line), so tests running side by side never collide. Every line
the process writes is kept, parsed as JSON where it is JSON.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Generous bounds that only keep a broken test from hanging, never measure anything.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")

Line = dict[str, Any]


def _text(line: Line) -> str:
    """A line's message, whether it was written as JSON or for humans."""
    return str(line.get("message", line.get("raw", "")))


class Server:
    """A running ``stepd serve`` and the lines it has written so far."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[Line] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self.wait_for_line(lambda line: _LISTENING.search(_text(line)))
        port = _LISTENING.search(_text(started))
        assert port is not None
        self.port = int(port.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            try:
                line = json.loads(text)
            except ValueError:
                line = {"raw": text}
            with self._changed:
                self.lines.append(line if isinstance(line, dict) else {"raw": text})
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, matches: Callable[[Line], object]) -> Line:
        """The first line that ``matches``, waiting for it to be written."""

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
        self.wait_for_line(
            lambda line: (
                line.get("logger") == "stepd.access" and line.get("request_id") == request_id
            )
        )
        return [
            line
            for line in self.lines
            if line.get("logger") == "stepd.access" and line.get("request_id") == request_id
        ]

    def wait(self) -> int:
        """Wait for the process to exit and for all it wrote to be read; its exit status."""
        status = self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        return status

    def terminate(self) -> int:
        """Send SIGTERM and wait for the process to exit; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait()


@contextmanager
def serve(root: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Run ``python -m app serve`` over ``root`` with ``args``; stop it afterwards."""
    command: Sequence[str] = [
        sys.executable,
        "-m",
        "app",
        "serve",
        "--port",
        "0",
        "--workspace-root",
        str(root),
        *args,
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STEPD_")}
    environment.update(env or {})
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=root,
    )
    try:
        yield Server(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
