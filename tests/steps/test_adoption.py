"""Staging owned per instance: what an instance that is gone left is adopted by another,
rolled back and purged exactly once, and never while its owner lives."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.sandbox import Root
from app.steps.area import Unusable
from app.steps.staging import Staging, TxnState
from app.steps.workspace import RESERVED

OpenStaging = Callable[[str], Staging]


@pytest.fixture
def tree(root_dir: Path) -> Path:
    (root_dir / "d").mkdir()
    (root_dir / "d" / "f").write_text("f")
    (root_dir / "g").write_text("g")
    return root_dir


@pytest.fixture
def open_staging(root_dir: Path) -> Iterator[OpenStaging]:
    """Opens a staging area for an instance, each over its own opening of the root, as
    separate processes have; all closed after."""
    opened: list[tuple[Root, Staging]] = []

    def open_for(instance: str) -> Staging:
        root = Root.open(root_dir, reserved=RESERVED)
        staging = Staging(root, instance=instance)
        opened.append((root, staging))
        return staging

    yield open_for
    for root, staging in opened:
        staging.close()
        root.close()


def _unfinished_batch(staging: Staging, *paths: str) -> str:
    """Stage ``paths`` in a transaction that never ends (its process dies); its id."""
    staging.prepare()
    txn = staging.begin()
    entries = [staging.root.lookup(path) for path in paths]
    txn.stage(staging.root, None, [e for e in entries if e is not None], [])
    assert txn.state() is TxnState.OPEN
    return txn.id


def _trash(tree: Path) -> list[str]:
    return os.listdir(tree / ".stepd" / "trash")


def test_a_gone_instances_batch_is_rolled_back_by_another(
    tree: Path, open_staging: OpenStaging
) -> None:
    dead, live = open_staging("a"), open_staging("b")
    live.prepare()
    txn_id = _unfinished_batch(dead, "d", "g")
    assert txn_id.startswith("a~")
    dead.close()  # the process dies: the kernel drops its lock
    recovery = live.adopt()
    assert (recovery.rolled_back, recovery.purged) == (1, 1)
    assert (tree / "d" / "f").read_text() == "f"
    assert (tree / "g").read_text() == "g"
    assert _trash(tree) == []
    assert os.listdir(tree / ".stepd" / "owners") == ["b"]
    assert live.adopt().purged == 0  # once


def test_a_live_instances_batch_is_never_adopted(tree: Path, open_staging: OpenStaging) -> None:
    owner, other = open_staging("a"), open_staging("b")
    other.prepare()
    txn_id = _unfinished_batch(owner, "g")
    assert other.adopt().purged == 0
    other.ready()
    assert not (tree / "g").exists()
    assert _trash(tree) == [txn_id]
    assert other.pending() == []


def test_two_adopters_recover_it_exactly_once(tree: Path, open_staging: OpenStaging) -> None:
    dead = open_staging("a")
    adopters = [open_staging(name) for name in ("b", "c", "e")]
    for adopter in adopters:
        adopter.prepare()
    _unfinished_batch(dead, "d", "g")
    dead.close()
    results = []
    start = threading.Barrier(len(adopters))

    def adopt(staging: Staging) -> None:
        start.wait()
        results.append(staging.adopt())

    threads = [threading.Thread(target=adopt, args=(a,)) for a in adopters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.rolled_back for r in results) == 1
    assert sum(r.purged for r in results) == 1
    assert (tree / "d" / "f").read_text() == "f"
    assert _trash(tree) == []


def test_a_restarted_instance_recovers_its_own(tree: Path, open_staging: OpenStaging) -> None:
    first = open_staging("a")
    _unfinished_batch(first, "g")
    first.close()
    again = open_staging("a")
    assert again.ready().rolled_back == 1
    assert (tree / "g").read_text() == "g"


def test_one_instance_id_serves_one_process(tree: Path, open_staging: OpenStaging) -> None:
    open_staging("a").prepare()
    with pytest.raises(Unusable, match="held by a live process"):
        open_staging("a").prepare()


def test_what_no_instance_owns_is_recovered_by_the_first_to_start(
    tree: Path,
    open_staging: OpenStaging,
) -> None:
    (tree / ".stepd" / "trash" / "leftover" / "0").mkdir(parents=True, mode=0o700)
    os.chmod(tree / ".stepd", 0o700)
    os.chmod(tree / ".stepd" / "trash", 0o700)
    staging = open_staging("a")
    assert staging.ready().purged == 1
    assert _trash(tree) == []
