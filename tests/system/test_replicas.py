"""Three real ``stepd serve`` processes on one root and one real PostgreSQL, as a cluster
runs them: one key sent to all three runs once; a replica killed (SIGKILL) in the middle
of an atomic batch leaves it rolled back or applied, never half, whoever recovers it;
overlapping load on all three answers no 5xx and leaves the exact tree and an empty
trash; PostgreSQL stopped and started under load costs keyed requests a clear 503, never
a wrong replay or a second run, and they recover on their own.

The counts printed (``replicas:`` lines) are the figures of docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.overlapping import request, tree
from tests.support.postgres import Postgres, running_postgres
from tests.support.server import Server, clean_environment, stepd_command
from tests.support.snapshot import matches, snapshot, without
from tests.support.trash import trash_emptied
from tests.support.trees import build_tree

NAMES = ("r0", "r1", "r2")
# Short, so that a killed replica's claim is free again soon; long enough that a replica
# on a loaded machine never misses renewing its own.
LEASE_SECONDS = 4.0


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A server of this module's own: one test stops and starts it."""
    with running_postgres() as server:
        yield server


class Cluster:
    """Replicas of one root and one database, started and stopped by instance id."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.replicas: dict[str, Server] = {}

    def start(self, *names: str) -> None:
        with ThreadPoolExecutor(len(names)) as pool:
            started = list(pool.map(self._start, names))
        self.replicas.update(zip(names, started, strict=True))

    def kill(self, name: str) -> None:
        self.replicas.pop(name).kill()

    def stop(self) -> None:
        for server in self.replicas.values():
            server.stop()
        self.replicas.clear()

    def _start(self, name: str) -> Server:
        env = {
            "STEPD_INSTANCE_ID": name,
            "STEPD_IDEMPOTENCY_STORE": self.url,
            "STEPD_IDEMPOTENCY_LEASE": f"PT{LEASE_SECONDS}S",
            "STEPD_IDEMPOTENCY_STORE_TIMEOUT": "0.5",
            "STEPD_ADOPT_INTERVAL": "0.5",
        }
        return Server.start(stepd_command(self.root), env=clean_environment(env))


@pytest.fixture
def cluster(root_dir: Path, pg: Postgres) -> Iterator[Cluster]:
    started = Cluster(root_dir, pg.database())
    started.start(*NAMES)
    try:
        yield started
    finally:
        started.stop()


def _at_once(calls: list[Any]) -> list[httpx.Response]:
    """Run the ``calls`` (each sends one request) at the same moment; their answers."""
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> httpx.Response:
        barrier.wait()
        answer: httpx.Response = call()
        return answer

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _post(
    server: Server, path: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(server.url(path), json=body, headers=headers, timeout=60)


def _settled(server: Server, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    """The answer to ``key`` once it is no longer in flight (bounded by a few leases)."""
    deadline = time.monotonic() + 3 * LEASE_SECONDS
    while True:
        answer = _post(server, path, body, key)
        if answer.status_code != 409 or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def _replayed(answer: httpx.Response) -> bool:
    return answer.headers.get("Idempotent-Replayed") == "true"


def test_one_key_sent_to_three_replicas_at_once_runs_once(cluster: Cluster, root_dir: Path) -> None:
    rounds, runs = 6, 0
    for n in range(rounds):
        target = root_dir / f"once-{n}.txt"
        target.write_text("x")
        body = {"path": target.name, "strict": True}
        servers = list(cluster.replicas.values())
        key = f"once-{n}"
        answers = _at_once(
            [lambda s=s, b=body, k=key: _post(s, "/steps/delete", b, k) for s in servers]
        )
        ran = [a for a in answers if a.status_code == 200 and not _replayed(a)]
        runs += len(ran)
        assert len(ran) == 1, [(a.status_code, a.text) for a in answers]
        for answer in answers:
            if answer is not ran[0]:
                in_flight = answer.status_code == 409 and answer.json()["code"] == (
                    "idempotency_key_in_flight"
                )
                assert in_flight or (_replayed(answer) and answer.json() == ran[0].json())
        assert not target.exists()
        # Were the step to run again, it would delete this; replays leave it alone.
        target.write_text("recreated")
        for server in servers:
            again = _settled(server, "/steps/delete", body, key)
            assert (again.status_code, _replayed(again)) == (200, True), again.text
            assert again.json() == ran[0].json()
        assert target.read_text() == "recreated"
    print(f"replicas: one key to three replicas at once: {rounds} keys, {runs} runs")


# Each batch deletes 48 trees, files and links, one journal sync per step: long enough to
# be killed inside; at least MIN_MID kills must land mid-transaction to prove anything.
DIRS, SUBDIRS, FILES = 16, 3, 20
RUNS, MIN_MID, MAX_RUNS = 6, 4, 16


def _batch(workspace: str, targets: list[str], fail: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"uses": "delete", "config": {"path": target}} for target in targets
    ]
    if fail:
        steps.append({"uses": "delete", "config": {"path": "missing", "strict": True}})
    return {"workspace": workspace, "atomic": True, "steps": steps}


def _targets(names: list[str]) -> list[str]:
    return [t for name in names for t in (name, f"file{name[1:]}.yaml", f"link{name[1:]}")]


def _unfinished(trash: Path, owner: str) -> bool:
    """Whether ``owner`` left a transaction whose journal has no end record."""
    for name in os.listdir(trash):
        journal = trash / name / "journal"
        if name.startswith(f"{owner}~") and journal.exists() and '"end"' not in journal.read_text():
            return True
    return False


def _wait_for_transaction(trash: Path, owner: str) -> None:
    """Wait (boundedly) until ``owner`` has a transaction directory in the trash."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(name.startswith(f"{owner}~") for name in os.listdir(trash)):
            return
        time.sleep(0.002)


def _in_background(call: Any) -> tuple[list[httpx.Response], threading.Thread]:
    """Send a request in a thread: its answer (none if its server was killed first)."""
    answers: list[httpx.Response] = []

    def run() -> None:
        with contextlib.suppress(httpx.HTTPError):  # killed mid-request
            answers.append(call())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return answers, thread


def test_kill9_mid_atomic_batch_on_one_of_three(cluster: Cluster, root_dir: Path) -> None:
    seed = int(os.environ.get("STEPD_KILL_SEED", time.time_ns() % 1_000_000))
    print(f"replicas kill -9 seed: {seed} (STEPD_KILL_SEED={seed} to repeat)")
    rng = random.Random(seed)
    trash = root_dir / ".stepd" / "trash"
    names = build_tree(root_dir / "calibrate", DIRS, SUBDIRS, FILES)
    started = time.monotonic()
    first = next(iter(cluster.replicas.values()))
    assert _post(first, "/steps/batch", _batch("calibrate", _targets(names), False)).is_success
    duration = time.monotonic() - started
    outcomes = {"runs": 0, "mid-transaction": 0, "rolled back": 0, "applied": 0}
    outcomes |= {"half-applied": 0, "adopted by a live replica": 0, "side batches": 0}
    run = 0
    while run < RUNS or (outcomes["mid-transaction"] < MIN_MID and run < MAX_RUNS):
        fail = run % 2 == 0
        workspace = f"run-{run}"
        targets = _targets(build_tree(root_dir / workspace, DIRS, SUBDIRS, FILES))
        before = snapshot(root_dir / workspace, mtimes=True)
        victim = sorted(cluster.replicas)[run % len(cluster.replicas)]
        others = [name for name in cluster.replicas if name != victim]
        # Batches on the two others, at the same time, in workspaces of their own.
        sides = []
        for name in others:
            side = root_dir / f"side-{run}-{name}"
            side.mkdir()
            (side / "a").write_text("a")
            (side / "b").mkdir()
            body = {"workspace": side.name, "atomic": True, "steps": [
                {"uses": "delete", "config": {"path": "a"}},
                {"uses": "delete", "config": {"path": "b"}},
            ]}  # fmt: skip
            server = cluster.replicas[name]
            sides.append(
                (side, _in_background(lambda s=server, b=body: _post(s, "/steps/batch", b)))
            )
        key, body = f"kill-{run}", _batch(workspace, targets, fail)
        killed = cluster.replicas[victim]
        _in_background(lambda k=killed, b=body, key=key: _post(k, "/steps/batch", b, key))
        # Once its transaction began (its directory appears), at a random moment of it.
        _wait_for_transaction(trash, victim)
        time.sleep(rng.uniform(0, duration * 0.3))
        cluster.kill(victim)
        outcomes["mid-transaction"] += _unfinished(trash, victim)
        if run % 2:
            # A pod of a Deployment comes back under another name: a live replica adopts.
            replacement = f"{victim.split('-')[0]}-{run}"
            outcomes["adopted by a live replica"] += 1
        else:
            replacement = victim  # restarted under its own name: it recovers its own
        cluster.start(replacement)
        assert trash_emptied(root_dir), f"run {run}: trash not emptied"
        after = snapshot(root_dir / workspace, mtimes=True)
        if after == before:
            outcomes["rolled back"] += 1
        elif not fail and matches(after, without(before, targets)):
            outcomes["applied"] += 1
        else:
            outcomes["half-applied"] += 1
        for side, (answers, thread) in sides:
            thread.join(60)
            assert [a.status_code for a in answers] == [200], f"run {run}: side batch"
            assert os.listdir(side) == [], f"run {run}: side batch not applied"
            outcomes["side batches"] += 1
        if run < 2:
            # The killed replica's key is free again within the lease (or was replayed).
            assert (
                _settled(cluster.replicas[replacement], "/steps/batch", body, key).status_code
                != 409
            )
        shutil.rmtree(root_dir / workspace)
        run += 1
    outcomes["runs"] = run
    print(f"replicas: kill -9 of one of three (batch takes {duration:.3f}s): {outcomes}")
    assert outcomes["half-applied"] == 0, outcomes
    assert outcomes["mid-transaction"] >= MIN_MID, outcomes


def test_overlapping_load_on_three_replicas(cluster: Cluster, root_dir: Path) -> None:
    tree(root_dir / "ws")
    before = snapshot(root_dir / "ws", mtimes=True)
    rng = random.Random(11)
    requests = [request(rng) for _ in range(180)]
    servers = list(cluster.replicas.values())

    def send(numbered: tuple[int, tuple[str, dict[str, Any], list[str]]]) -> httpx.Response:
        n, (endpoint, body, _) = numbered
        return _post(servers[n % len(servers)], endpoint, body)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, enumerate(requests)))
    assert trash_emptied(root_dir), "the purgers left the trash full"
    deleted: list[str] = []
    for (_, body, targets), answer in zip(requests, answers, strict=True):
        assert answer.status_code < 500, answer.text
        if targets:
            assert answer.status_code == 200, (body, answer.text)
            deleted += targets
        else:
            assert (answer.status_code, answer.json()["rolledBack"]) == (404, True), answer.text
    gone = {p for p in before if any(p == t or p.startswith(t + "/") for t in deleted)}
    after = snapshot(root_dir / "ws", mtimes=True)
    assert set(after) == set(before) - gone
    assert all(after[p] == before[p] for p in after if after[p][0] == "file")
    print(f"replicas: overlapping load: {len(requests)} requests on three, no 5xx")


def test_postgres_stopped_and_started_under_load(
    cluster: Cluster, root_dir: Path, pg: Postgres
) -> None:
    (root_dir / "pg").mkdir()
    stopping = threading.Event()
    sent: list[tuple[str, Path, httpx.Response, float]] = []
    down: list[float] = []

    def load(name: str) -> None:
        server = cluster.replicas[name]
        n = 0
        while not stopping.is_set():
            path = root_dir / "pg" / f"{name}-{n}"
            path.write_text("x")
            key = f"pg-{name}-{n}"
            answer = _post(
                server, "/steps/delete", {"path": f"pg/{path.name}", "strict": True}, key
            )
            sent.append((key, path, answer, time.monotonic()))
            n += 1

    threads = [threading.Thread(target=load, args=(name,)) for name in cluster.replicas]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        pg.stop("fast")
        down.append(time.monotonic())
        time.sleep(0.5)
        ready = httpx.get(next(iter(cluster.replicas.values())).url("/readyz"), timeout=30)
        time.sleep(1)
    finally:
        pg.start()
        down.append(time.monotonic())
    time.sleep(3)
    stopping.set()
    for thread in threads:
        thread.join(60)
    assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
    assert "store_unavailable" in ready.json()["detail"]
    refused = ran = replayed = 0
    for key, path, answer, _ in sent:
        if answer.status_code == 503:
            assert answer.json()["code"] == "store_unavailable", answer.text
            assert path.exists(), f"{key}: answered 503 but ran"
            refused += 1
            continue
        assert (answer.status_code, _replayed(answer)) == (200, False), answer.text
        assert not path.exists()
        ran += 1
        path.write_text("recreated")  # a second run would delete it
        body = {"path": f"pg/{path.name}", "strict": True}
        again = _settled(cluster.replicas[key.split("-")[1]], "/steps/delete", body, key)
        assert (again.status_code, _replayed(again)) == (200, True), (key, again.text)
        assert path.read_text() == "recreated", f"{key}: ran twice"
        replayed += 1
    assert refused > 0, "no request met the database down"
    # Recovered on their own: the last second of each replica's load all ran.
    recovered = [a for _, _, a, at in sent if at > down[1] + 2]
    assert recovered
    assert all(a.status_code == 200 for a in recovered)
    print(
        f"replicas: PostgreSQL down {down[1] - down[0]:.1f}s under load: {len(sent)} keyed "
        f"requests, {ran} ran, {refused} answered 503 store_unavailable (none ran), "
        f"{replayed} replayed after, 0 ran twice"
    )
