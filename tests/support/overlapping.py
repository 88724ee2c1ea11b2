"""Overlapping requests on one workspace ``ws``: deletes, glob batches, atomic batches that
succeed and atomic batches that fail (their last step is strict on a missing path), each
with the targets it deletes when it succeeds (none for those that must fail)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

GROUPS, FILES = 8, 24


def tree(base: Path) -> None:
    for g in range(GROUPS):
        (base / f"g{g}" / "sub").mkdir(parents=True)
        for f in range(FILES):
            (base / f"g{g}" / f"f{f}").write_text(f"{g}.{f}")
            (base / f"g{g}" / "sub" / f"f{f}").write_text(f"sub {g}.{f}")


def request(rng: random.Random) -> tuple[str, dict[str, Any], list[str]]:
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
