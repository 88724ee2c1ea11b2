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

from tests.support.server import Server, stepd_command
from tests.support.snapshot import snapshot
from tests.support.trash import trash_emptied

GROUPS, FILES, REQUESTS, WORKERS = 8, 24, 240, 16


def _tree(base: Path) -> None:
    for g in range(GROUPS):
        (base / f"g{g}" / "sub").mkdir(parents=True)
        for f in range(FILES):
            (base / f"g{g}" / f"f{f}").write_text(f"{g}.{f}")
            (base / f"g{g}" / "sub" / f"f{f}").write_text(f"sub {g}.{f}")


def _request(rng: random.Random) -> tuple[str, dict[str, Any], list[str]]:
    """A random request: its endpoint, body, and the targets it deletes if it succeeds."""
    g = rng.randrange(GROUPS)
    file = f"g{g}/f{rng.randrange(FILES)}"
    kind = rng.choice(
        ["delete", "delete", "failing-atomic", "failing-atomic", "atomic", "glob-batch"]
    )
    if kind == "delete":
        return "/steps/delete", {"workspace": "ws", "path": file}, [file]
    if kind == "glob-batch":
        name = f"f{rng.randrange(FILES)}"
        pattern = f"g{g}/sub/{{{name},none}}"
        body = {
            "workspace": "ws",
            "steps": [{"uses": "delete", "config": {"paths": [pattern], "pathsAreGlobs": True}}],
        }
        return "/steps/batch", body, [f"g{g}/sub/{name}"]
    # A group, its neighbour's files one by one (one journal sync each: a wide window for
    # anyone to observe the moves before the rollback), then maybe a step that fails.
    other = (g + 1) % GROUPS
    targets = [f"g{g}", *(f"g{other}/sub/f{f}" for f in range(FILES))]
    steps: list[dict[str, Any]] = [
        {"uses": "delete", "config": {"path": target}} for target in targets
    ]
    if kind == "failing-atomic":
        steps.append({"uses": "delete", "config": {"path": "nothing-here", "strict": True}})
        return "/steps/batch", {"workspace": "ws", "atomic": True, "steps": steps}, []
    pair = [file, f"g{other}/f{rng.randrange(FILES)}"]
    steps = [{"uses": "delete", "config": {"path": target}} for target in pair]
    return "/steps/batch", {"workspace": "ws", "atomic": True, "steps": steps}, pair


def test_concurrent_overlapping_requests(root_dir: Path) -> None:
    _tree(root_dir / "ws")
    before = snapshot(root_dir / "ws", mtimes=True)
    rng = random.Random(7)
    requests = [_request(rng) for _ in range(REQUESTS)]
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
