"""A real ``python -m app serve`` subprocess on 127.0.0.1, on a port the kernel picks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

STARTUP_SECONDS = 30
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "app", "serve", *args]


@contextmanager
def running_server(args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the server, wait until /healthz answers, yield its base URL; always stop it.

    Port 0 lets the kernel pick a free port; uvicorn logs the one it got. The log goes to a
    file, not a pipe, so a chatty server can never block on a full pipe.
    """
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            serve_command(*args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            port = _wait_for_port(process, log)
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_port(process: subprocess.Popen[bytes], log: IO[str]) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        log.seek(0)
        if found := _LISTENING.search(log.read()):
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    raise RuntimeError(f"server did not start (exit status {process.poll()}):\n{log.read()}")
