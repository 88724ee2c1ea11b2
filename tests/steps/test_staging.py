"""The staging area: journaled moves, rollback, commit, purge, and recovery after a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.sandbox import Entry, Root
from app.steps.staging import JOURNAL, Staging, TxnState
from tests.support.snapshot import Snapshot, snapshot


@pytest.fixture
def staging(root: Root) -> Staging:
    return Staging(root)


@pytest.fixture
def tree(root_dir: Path) -> Path:
    (root_dir / "d" / "e").mkdir(parents=True)
    (root_dir / "d" / "e" / "f").write_text("f")
    (root_dir / "d" / "g").write_text("g")
    (root_dir / "d" / "g").chmod(0o600)
    (root_dir / "link").symlink_to("d/e")
    for path in (root_dir / "d" / "e", root_dir / "d", root_dir):
        os.utime(path, ns=(7, 7))
    return root_dir


def _entries(root: Root, *paths: str) -> list[Entry]:
    entries = [root.lookup(path) for path in paths]
    assert all(entries)
    return [e for e in entries if e is not None]


def _workspace_snapshot(root_dir: Path) -> Snapshot:
    return snapshot(root_dir, exclude=(root_dir / ".stepd",), mtimes=True)


def test_rollback_restores_exactly(root: Root, staging: Staging, tree: Path) -> None:
    before = _workspace_snapshot(tree)
    txn = staging.begin()
    txn.stage(root, None, _entries(root, "d/e/f", "link"), [])
    txn.stage(root, None, _entries(root, "d"), [])
    assert sorted(os.listdir(tree)) == [".stepd"]
    txn.rollback()
    txn.purge()
    assert _workspace_snapshot(tree) == before
    assert staging.pending() == []


def test_commit_then_purge_frees_everything(root: Root, staging: Staging, tree: Path) -> None:
    txn = staging.begin()
    txn.stage(root, None, _entries(root, "d"), [])
    txn.commit()
    assert staging.state(txn.id) is TxnState.COMMITTED
    txn.purge()
    assert staging.pending() == []
    assert not (tree / "d").exists()


def test_recovery_rolls_back_unfinished(root: Root, staging: Staging, tree: Path) -> None:
    before = _workspace_snapshot(tree)
    txn = staging.begin()
    txn.stage(root, None, _entries(root, "d/g", "link"), [])
    assert staging.state(txn.id) is TxnState.OPEN  # the process dies here
    recovery = Staging(root).recover()
    assert (recovery.rolled_back, recovery.purged) == (1, 1)
    assert _workspace_snapshot(tree)["d/g"] == before["d/g"]
    assert (tree / "link").is_symlink()
    assert staging.pending() == []


def test_recovery_purges_committed(root: Root, staging: Staging, tree: Path) -> None:
    txn = staging.begin()
    txn.stage(root, None, _entries(root, "d"), [])
    txn.commit()  # the process dies before purging
    assert Staging(root).recover().rolled_back == 0
    assert not (tree / "d").exists()
    assert staging.pending() == []


def test_torn_journal_line_is_ignored(root: Root, staging: Staging, tree: Path) -> None:
    txn = staging.begin()
    txn.stage(root, None, _entries(root, "d/g"), [])
    journal = tree / ".stepd" / "trash" / txn.id / JOURNAL
    with journal.open("a") as f:
        f.write('{"end": "comm')  # a commit record the process died writing
    assert staging.state(txn.id) is TxnState.OPEN
    staging.recover()
    assert (tree / "d" / "g").read_text() == "g"


def test_journaled_but_unmoved_entry_is_left_alone(
    root: Root, staging: Staging, tree: Path
) -> None:
    txn = staging.begin()
    txn.stage(root, None, _entries(root, "d/g"), [])
    journal = tree / ".stepd" / "trash" / txn.id / JOURNAL
    record = {"stage": [{"n": 1, "workspace": None, "path": "d/e", "parentTimes": [1, 1]}]}
    with journal.open("a") as f:
        f.write(json.dumps(record) + "\n")  # died between journaling and moving
    staging.recover()
    assert (tree / "d" / "g").exists()
    assert (tree / "d" / "e" / "f").exists()


def test_directory_without_journal_is_garbage(root: Root, staging: Staging, tree: Path) -> None:
    garbage = tree / ".stepd" / "trash" / "leftover"
    (garbage / "x").mkdir(parents=True)
    assert staging.state("leftover") is TxnState.ABORTED
    staging.recover()
    assert staging.pending() == []


def test_superseded_entry_is_purged_not_forced_back(
    root: Root, staging: Staging, tree: Path
) -> None:
    txn = staging.begin()
    txn.stage(root, None, _entries(root, "d/g"), [])
    (tree / "d" / "g").write_text("newer")
    txn.rollback()
    txn.purge()
    assert (tree / "d" / "g").read_text() == "newer"
