"""A real PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` from Debian's
packages (``apt-get install postgresql``; ``.ci/run`` installs it when missing), in a
temp directory, on a free loopback port, with fsync off (the tests never cut power; the
benchmarks keep it on).

PostgreSQL refuses to run as root: when the tests do, the server runs as ``nobody``,
in a directory handed to that user. A machine without the binaries fails the tests
that need them, saying so: nothing is skipped.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.server import free_port

UNPRIVILEGED = "nobody"


def binaries() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb): "
            "install them with `apt-get install -y postgresql` (.ci/run does)"
        )
    return Path(found[-1]).parent


class Postgres:
    """A server in ``directory`` on ``port``, started and stopped with ``pg_ctl``."""

    def __init__(self, directory: Path, port: int, *, durable: bool = False) -> None:
        self.bin = binaries()
        self.durable = durable
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._user = pwd.getpwnam(UNPRIVILEGED) if os.geteuid() == 0 else None

    def initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
        options += "-c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def database(self) -> str:
        """A new, empty database on the server; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._user is not None:
            user = self._user
            command = [
                "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                "--clear-groups", *command,
            ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=self.directory, check=False
        )
        if done.returncode != 0:
            log = self.directory / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}\n{tail}"
            )


@contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[Postgres]:
    """A fresh server for the block, in a temp directory removed after; ``durable``: with
    PostgreSQL's default fsync and synchronous commit (benchmarks), not the tests' none."""
    directory = Path(tempfile.mkdtemp(prefix="stepd-pg-"))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(directory, user.pw_uid, user.pw_gid)
        server = Postgres(directory, free_port(), durable=durable)
        server.initdb()
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
