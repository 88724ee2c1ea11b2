"""Figure 2b: CPU per request in process, without the network, for each change's share.

wrk's rates move with whatever else runs on the machine; the CPU one process spends per
request moves much less. This drives the ASGI application directly (16 requests at a
time on uvloop, as wrk's 16 connections), after its start-up, and prints the process's
CPU time per request (all threads: event loop and step pool) in these cases: the bare
endpoint (``bench/bare_app.py``); the no-op delete with the cluster configuration
(tokens, JSON access line, metrics), with everything off, and with only the tokens or
only the access line on; and deleting one small file (cluster). Each case runs in a
fresh subprocess, ``--rounds`` times in turn, medians printed.

``--tree DIR`` measures the stepd source in ``DIR`` instead (a checkout of another
commit, say ``git worktree add /tmp/old <commit>``): how each change was measured.
Usage: ``python -m bench.request_cost [--requests N] [--rounds N] [--tree DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import REPO, header, median

CASES = ("noop bare", "noop cluster", "noop off", "noop +auth", "noop +logs", "file cluster")
CONCURRENCY = 16
TOKEN = "bench-token-3"


def _app(case: str, root: Path, tokens: Path) -> Any:
    """The application of ``case``, its logging set as ``stepd serve`` sets it."""
    if case.endswith("bare"):
        from bench.bare_app import app

        return app
    from app.main import create_app
    from app.observability import logs
    from app.settings import Settings

    cluster = case.endswith("cluster")
    devnull = open(os.devnull, "w")  # noqa: SIM115  # for the process's lifetime
    level = "info" if cluster or case.endswith("+logs") else "warning"
    logs.configure_logging("json", level, devnull)
    settings = Settings(
        workspace_root=root,
        auth_tokens_file=tokens if cluster or case.endswith("+auth") else None,
        metrics=cluster,
    )
    return create_app(settings)


async def _request(app: Any, body: bytes) -> None:
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/steps/delete",
        "raw_path": b"/steps/delete",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": {},
    }
    given = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if statuses != [200]:
        raise RuntimeError(f"answered {statuses}")


def _measure(case: str, requests: int) -> float:
    """CPU µs per request of ``case``, in this process."""
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        (root / "files").mkdir(parents=True)
        tokens = Path(tmp) / "tokens"
        tokens.write_text("".join(f"caller-{n}:bench-token-{n}\n" for n in range(1, 6)))
        old = time.time() - 60  # not "just written": the token file is not re-read
        os.utime(tokens, (old, old))
        one_file = case.startswith("file")
        warm = 200
        if one_file:
            for n in range(warm + requests):
                (root / "files" / f"f{n}").write_bytes(b"x" * 64)
        template = '{"workspace": "files", "path": "f%d"}' if one_file else '{"path": "gone-%d"}'
        app = _app(case, root, tokens)
        per_task = requests // CONCURRENCY

        async def worker(first: int) -> None:
            for n in range(first, first + per_task):
                await _request(app, (template % n).encode())

        async def run() -> float:
            async with _lifespan(app):
                for n in range(warm):
                    await _request(app, (template % n).encode())
                start = time.process_time()
                tasks = (worker(warm + k * per_task) for k in range(CONCURRENCY))
                await asyncio.gather(*tasks)
                return time.process_time() - start

        seconds = uvloop.run(run())
        logging.shutdown()
        return 1e6 * seconds / (per_task * CONCURRENCY)


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    if getattr(app.router, "lifespan_context", None) is None:
        yield
        return
    async with app.router.lifespan_context(app):
        yield


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=REPO, help="stepd source to measure")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        print(f"{_measure(args.case, args.requests):.1f}")
        return
    header(f"request cost in process: {args.requests} requests, {args.rounds} rounds")
    tree = args.tree.resolve()
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{REPO}"}
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    for _ in range(args.rounds):
        for case in CASES:
            # By path, so that ``app`` comes from ``tree`` whatever its bench/ holds.
            command = [sys.executable, __file__, "--case", case]
            command += ["--requests", str(args.requests)]
            out = subprocess.run(
                command, cwd=tree, env=env, capture_output=True, text=True, check=True
            )
            samples[case].append(float(out.stdout.split()[-1]))
    for case, values in samples.items():
        spread = f"{min(values):.0f}..{max(values):.0f}"
        print(f"  {case:14} {median(values):6.0f} µs CPU per request  ({spread})", flush=True)
    bare = median(samples["noop bare"])
    for case in ("noop cluster", "file cluster"):
        print(f"  ratio bare / {case}: {bare / median(samples[case]):.2f}")
    off = median(samples["noop off"])
    for case in ("noop +auth", "noop +logs", "noop cluster"):
        print(f"  cost of {case.split()[1]} over off: {median(samples[case]) - off:5.0f} µs")


if __name__ == "__main__":
    main()
