"""``SQLiteStore``: the database is reached through its directory's descriptor, never by
path, and no symlink or foreign file is opened in place of its files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from app.idempotency.sqlite import DATABASE, SQLiteStore
from app.idempotency.store import ClaimOutcome, StoreUnavailable
from app.sandbox import Root
from tests.idempotency.conftest import LEASE, MAX_RECORDS, TTL, Clock
from tests.support.canaries import Canaries
from tests.support.mounts import bind_mount, remount, skip_if_not_permitted


def _open(directory: Path, owner: str = "a", clock: Clock | None = None) -> SQLiteStore:
    return SQLiteStore(
        Root.open(directory),
        TTL,
        owner=owner,
        lease=LEASE,
        max_records=MAX_RECORDS,
        clock=clock or Clock(),
    )


def test_records_survive_a_reopen(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.claim("c", "k", "fp")
    store.close()
    reopened = _open(tmp_path, owner="b")
    assert reopened.claim("c", "k", "fp").outcome is ClaimOutcome.IN_FLIGHT
    reopened.close()


def test_the_directory_opened_is_used_wherever_it_moves(tmp_path: Path) -> None:
    """Renaming the directory away and planting a symlink to elsewhere in its place
    changes nothing: the database stays in the directory that was opened."""
    state = tmp_path / "area" / "state"
    state.mkdir(parents=True)
    directory = Root.open(state)
    (tmp_path / "area").rename(tmp_path / "moved")
    canaries = Canaries.plant(tmp_path / "outside")
    (tmp_path / "area").symlink_to(tmp_path / "outside")
    store = SQLiteStore(
        directory, TTL, owner="a", lease=LEASE, max_records=MAX_RECORDS, clock=Clock()
    )
    store.claim("c", "k", "fp")
    store.close()
    assert not canaries.changes()
    assert DATABASE in os.listdir(tmp_path / "moved" / "state")


@pytest.mark.parametrize("name", [DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm"])
def test_a_symlink_in_place_of_a_file_is_refused(tmp_path: Path, name: str) -> None:
    canaries = Canaries.plant(tmp_path / "outside")
    state = tmp_path / "state"
    state.mkdir()
    (state / name).symlink_to(tmp_path / "outside" / DATABASE)
    with pytest.raises(StoreUnavailable, match="symbolic link") as raised:
        _open(state)
    assert raised.value.code == "io_error"
    assert not canaries.changes()


def test_a_fifo_in_place_of_the_database_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / DATABASE)
    with pytest.raises(StoreUnavailable, match="not a regular file"):
        _open(tmp_path)


def test_a_bind_mounted_database_is_refused(tmp_path: Path) -> None:
    canaries = Canaries.plant(tmp_path / "outside")
    (tmp_path / "state").mkdir()
    target = tmp_path / "state" / DATABASE
    target.touch()
    with (
        skip_if_not_permitted(),
        bind_mount(tmp_path / "outside" / DATABASE, target),
        pytest.raises(StoreUnavailable, match="mount point"),
    ):
        _open(tmp_path / "state")
    assert not canaries.changes()


def test_a_database_from_before_leases_is_upgraded(tmp_path: Path) -> None:
    """Its in-flight claims have no owner and no lease: they count as abandoned."""
    old = sqlite3.connect(tmp_path / DATABASE)
    old.executescript(
        "CREATE TABLE idempotency (caller TEXT NOT NULL, key TEXT NOT NULL,"
        " fingerprint TEXT NOT NULL, in_flight INTEGER NOT NULL, status INTEGER,"
        " content_type TEXT, body BLOB, expires_at REAL NOT NULL, PRIMARY KEY (caller, key));"
        "INSERT INTO idempotency VALUES ('c', 'running', 'fp', 1, NULL, NULL, NULL, 9e9);"
        "INSERT INTO idempotency VALUES ('c', 'done', 'fp', 0, 200, 'application/json',"
        " x'7b7d', 9e9);"
    )
    old.commit()
    old.close()
    store = _open(tmp_path)
    assert store.claim("c", "running", "fp").outcome is ClaimOutcome.NEW
    assert store.claim("c", "done", "fp").outcome is ClaimOutcome.REPLAY
    store.close()


def test_a_read_only_directory_is_read_only_filesystem(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with skip_if_not_permitted(), bind_mount(state, state):
        remount(state, "bind,ro")
        with pytest.raises(StoreUnavailable) as raised:
            _open(state)
    assert raised.value.code == "read_only_filesystem"
