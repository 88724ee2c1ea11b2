"""A real ``stepd serve`` in a subprocess, on a free port, for the tests that kill it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class Server:
    """``stepd serve --port 0`` over ``root``; ``url`` is known once it serves."""

    def __init__(
        self, root: Path, *, prefix: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        self.root = root
        self.prefix = list(prefix)
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: list[str] = []

    def start(self) -> Server:
        """Start it and wait until it serves: recovery runs before it listens."""
        command = [sys.executable, "-m", "app", "serve", "--port", "0"]
        command += ["--workspace-root", str(self.root), "--log-level", "info"]
        self.process = subprocess.Popen(
            self.prefix + command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            if match := _LISTENING.search(line):
                self.url = f"http://127.0.0.1:{match.group(1)}"
                break
        else:
            self.process.wait()
            raise RuntimeError("stepd did not start:\n" + "".join(self.log))
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        return self

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.process is not None
        self.process.kill()
        self._reap()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self._reap()

    def _reap(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        self.process.wait()
        self._drainer.join()
        self.process.stdout.close()

    def _drain(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
