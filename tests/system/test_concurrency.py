"""Many concurrent batches and deletes on overlapping paths against a real server: no
5xx, and the final state is what the successful requests asked for, no more, no less.

Atomic batches that fail (their last step is strict on a missing path) must leave no
trace; everything a successful request deleted must be gone; everything else must be
there, unchanged.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.overlapping import request, tree
from tests.support.server import Server, stepd_command
from tests.support.snapshot import snapshot
from tests.support.trash import trash_emptied

REQUESTS, WORKERS = 240, 16


def test_concurrent_overlapping_requests(root_dir: Path) -> None:
    tree(root_dir / "ws")
    before = snapshot(root_dir / "ws", mtimes=True)
    rng = random.Random(7)
    requests = [request(rng) for _ in range(REQUESTS)]
    server = Server.start(stepd_command(root_dir))
    try:
        with server.client() as client:

            def send(request: tuple[str, dict[str, Any], list[str]]) -> httpx.Response:
                return client.post(request[0], json=request[1])

            with ThreadPoolExecutor(WORKERS) as pool:
                answers = list(pool.map(send, requests))
        purged = trash_emptied(root_dir)
    finally:
        server.stop()

    deleted: list[str] = []
    for (endpoint, body, targets), answer in zip(requests, answers, strict=True):
        assert answer.status_code < 500, answer.text
        if targets:
            assert answer.status_code == 200, (endpoint, body, answer.text)
            deleted += targets
        else:
            assert answer.status_code == 404, answer.text
            assert answer.json()["rolledBack"] is True
    gone = {path for path in before if any(path == t or path.startswith(t + "/") for t in deleted)}
    after = snapshot(root_dir / "ws", mtimes=True)
    assert set(after) == set(before) - gone
    for path, entry in after.items():
        if entry[0] == "file":
            assert entry == before[path], path
    assert purged, "the purger left the trash full"
