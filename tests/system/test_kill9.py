"""kill -9 during atomic batches: after a restart, each batch is wholly applied or wholly
rolled back, and the staging area is empty.

A real ``stepd serve`` runs atomic batches over a tree of ~2 000 entries and is killed
with SIGKILL after a random delay (seeded; the seed is printed). The next server's
start-up recovers before it listens. Half the batches end with a strict step that fails
(so they must always end rolled back), half succeed (so either outcome is allowed).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
import time
from pathlib import Path

import httpx

from tests.support.server import Server, stepd_command
from tests.support.snapshot import matches, snapshot, without
from tests.support.trash import trash_emptied
from tests.support.trees import build_tree

RUNS = 20
# Kills that must land mid-transaction for the test to prove anything, and the most runs
# it may take to get them when a loaded machine makes the calibrated delay miss.
MIN_MID_TRANSACTION = RUNS // 5
MAX_RUNS = 3 * RUNS
DIRS, SUBDIRS, FILES = 24, 3, 20


def _batch(workspace: str, targets: list[str], fail: bool) -> dict[str, object]:
    steps: list[dict[str, object]] = [
        {"uses": "delete", "as": f"rm-{i}", "config": {"path": target}}
        for i, target in enumerate(targets)
    ]
    if fail:
        steps.append({"uses": "delete", "config": {"path": "missing", "strict": True}})
    return {"workspace": workspace, "atomic": True, "steps": steps}


def _targets(names: list[str]) -> list[str]:
    """Directories, files beside them and symlinks to them: every kind of entry."""
    targets = []
    for name in names:
        number = name[1:]
        targets += [name, f"file{number}.yaml", f"link{number}"]
    return targets


def _post_in_background(url: str, body: dict[str, object]) -> list[httpx.Response]:
    answers: list[httpx.Response] = []

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):  # killed mid-request
            answers.append(httpx.post(url + "/steps/batch", json=body, timeout=60))

    threading.Thread(target=post, daemon=True).start()
    return answers


def _ended(txn_dir: Path) -> bool:
    """Whether a transaction directory's journal has its end record (commit or abort)."""
    journal = txn_dir / "journal"
    return journal.exists() and '"end"' in journal.read_text()


def test_kill9_leaves_each_batch_whole(root_dir: Path) -> None:
    seed = int(os.environ.get("STEPD_KILL_SEED", time.time_ns() % 1_000_000))
    print(f"kill -9 test seed: {seed} (STEPD_KILL_SEED={seed} to repeat)")
    rng = random.Random(seed)
    trash = root_dir / ".stepd" / "trash"
    server = Server.start(stepd_command(root_dir))
    try:
        # Calibrate: how long one such request takes here, warm and not killed.
        for attempt in range(2):
            names = build_tree(root_dir / f"calibrate-{attempt}", DIRS, SUBDIRS, FILES)
            body = _batch(f"calibrate-{attempt}", _targets(names), False)
            started = time.monotonic()
            answer = httpx.post(server.url("/steps/batch"), json=body, timeout=60)
            duration = time.monotonic() - started
            assert answer.status_code == 200, answer.text
        outcomes = {"rolled back": 0, "applied": 0, "killed mid-transaction": 0}
        run = 0
        while run < RUNS or (
            outcomes["killed mid-transaction"] < MIN_MID_TRANSACTION and run < MAX_RUNS
        ):
            fail = run % 2 == 0
            workspace = f"run-{run}"
            names = build_tree(root_dir / workspace, DIRS, SUBDIRS, FILES)
            targets = _targets(names)
            before = snapshot(root_dir / workspace, mtimes=True)
            answers = _post_in_background(server.base_url, _batch(workspace, targets, fail))
            time.sleep(rng.uniform(0, duration * 1.2))
            server.kill()
            if any(not _ended(trash / name) for name in os.listdir(trash)):
                outcomes["killed mid-transaction"] += 1
            server = Server.start(stepd_command(root_dir))

            # Recovery rolled back before serving; the purger empties the trash after.
            assert trash_emptied(root_dir), f"run {run}: staging area not empty"
            after = snapshot(root_dir / workspace, mtimes=True)
            if after == before:
                outcomes["rolled back"] += 1
            else:
                assert not fail, f"run {run}: a failing batch left changes"
                assert matches(after, without(before, targets)), f"run {run}: half applied"
                outcomes["applied"] += 1
            if answers and answers[0].status_code == 200:
                assert after != before, f"run {run}: answered 200 but nothing applied"
            shutil.rmtree(root_dir / workspace)
            run += 1
        print(f"kill -9 outcomes over {run} runs (batch takes {duration:.3f}s): {outcomes}")
        # A kill that always lands before or after the batch would prove nothing.
        assert outcomes["killed mid-transaction"] >= MIN_MID_TRANSACTION, outcomes
    finally:
        server.stop()
