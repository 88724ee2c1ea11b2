"""A real ``python -m app serve`` subprocess on 127.0.0.1, on a port the kernel picks."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# uvicorn announces the port it bound; with --port 0 that is the only way to learn it.
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0


@dataclass
class Server:
    """A running server: its base URL, process and log file."""

    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this server (the timeout only guards against a hang)."""
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None


@contextmanager
def serve(
    workspace_root: Path,
    log: Path,
    *,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[Server]:
    """Run the server over ``workspace_root`` until the block ends; its output goes to ``log``."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "app", "serve",
                "--host", "127.0.0.1", "--port", "0",
                "--workspace-root", str(workspace_root),
                "--log-level", "info",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )  # fmt: skip
    try:
        server = Server(f"http://127.0.0.1:{_wait_for_port(process, log)}", process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_port(process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if match := _LISTENING.search(text):
            return int(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{text}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not start within {START_TIMEOUT}s:\n{log.read_text()}")
