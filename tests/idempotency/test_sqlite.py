"""``SQLiteStore``: the database is reached through its directory's descriptor, never by
path, and no symlink or foreign file is opened in place of its files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from app.idempotency.sqlite import DATABASE, SQLiteStore
from app.idempotency.store import ClaimOutcome, StoredResponse, StoreUnavailable
from app.sandbox import Root
from tests.idempotency.conftest import LEASE, MAX_RECORDS, TTL, Clock
from tests.support.canaries import Canaries
from tests.support.mounts import bind_mount, remount, skip_if_not_permitted

ANSWER = StoredResponse(200, "application/json", b"x" * 2000)


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


def _files_size(directory: Path) -> int:
    """The database's bytes on disk, its WAL included."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith(DATABASE))


def _fill(store: SQLiteStore, clock: Clock, prefix: str, count: int) -> None:
    for n in range(count):
        clock.now += 0.001
        store.claim("c", f"{prefix}{n}", "fp")
        store.complete("c", f"{prefix}{n}", ANSWER)


def test_the_file_shrinks_once_records_expire(tmp_path: Path) -> None:
    clock = Clock()
    store = _open(tmp_path, clock=clock)
    _fill(store, clock, "k", 2000)
    full = _files_size(tmp_path)
    assert full > 2000 * len(ANSWER.body)
    clock.now += TTL.total_seconds()
    assert store.sweep().expired == 2000
    assert _files_size(tmp_path) < full / 20
    store.close()


def test_the_file_stays_bounded_under_the_cap(tmp_path: Path) -> None:
    """Ten times the cap goes through the store: the file holds about the cap's worth."""
    clock = Clock()
    store = SQLiteStore(
        Root.open(tmp_path), TTL, owner="a", lease=LEASE, max_records=200, clock=clock
    )
    sizes = []
    for round_ in range(10):
        _fill(store, clock, f"r{round_}-", 200)
        assert store.sweep().kept == 200
        sizes.append(_files_size(tmp_path))
    assert max(sizes) < 2 * 200 * (len(ANSWER.body) + 500)
    store.close()


def test_a_database_without_incremental_vacuum_is_converted(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / DATABASE)
    old.execute("CREATE TABLE t (x)")
    old.close()
    _open(tmp_path).close()
    converted = sqlite3.connect(tmp_path / DATABASE)
    assert converted.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    converted.close()
