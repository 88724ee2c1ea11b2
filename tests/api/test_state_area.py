"""stepd's own area through HTTP: a hostile ``.stepd`` (a symlink or a mount at each level,
the database file included) is refused, never followed; an area moved away, replaced or
removed while serving is made anew; nothing outside the root changes (canaries checked by
hash, inode and mtime); no answer ever names a trash directory."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.idempotency.sqlite import DATABASE
from app.main import create_app
from app.settings import Settings
from tests.support.canaries import Canaries
from tests.support.mounts import bind_mount, skip_if_not_permitted
from tests.support.problems import assert_problem

# A trash directory's name (uuid4 hex): internal, never part of an answer.
TRASH_ID = re.compile(r"[0-9a-f]{32}")

Plant = Callable[[Path, Path], AbstractContextManager[object]]


@contextmanager
def _symlink(where: Path, target: Path) -> Iterator[None]:
    where.symlink_to(target)
    yield


def _bind_mount(where: Path, target: Path) -> AbstractContextManager[object]:
    if target.is_dir():
        where.mkdir(mode=0o700)
    else:
        where.touch()
    return bind_mount(target, where)


@pytest.fixture
def canaries(root_dir: Path) -> Iterator[Canaries]:
    planted = Canaries.plant(root_dir.parent / "canaries")
    yield planted
    assert not planted.changes()


@pytest.fixture
def targets(root_dir: Path) -> Path:
    for name in ("d1", "d2", "d3", "atomic"):
        (root_dir / name / "sub").mkdir(parents=True)
        (root_dir / name / "sub" / "f").write_text(name)
    return root_dir


def _client(root_dir: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(workspace_root=root_dir, **settings)))  # type: ignore[arg-type]


def _delete(client: TestClient, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/steps/delete", json={"path": path}, headers=headers)


def _atomic(client: TestClient, path: str) -> httpx.Response:
    steps = [{"uses": "delete", "config": {"path": path}}]
    return client.post("/steps/batch", json={"atomic": True, "steps": steps})


LEVELS = {
    ".stepd": lambda canaries: canaries.top,
    ".stepd/state": lambda canaries: canaries.top / "state",
    f".stepd/state/{DATABASE}": lambda canaries: canaries.top / "state" / DATABASE,
}


@pytest.mark.parametrize("plant", [_symlink, _bind_mount], ids=["symlink", "mount"])
@pytest.mark.parametrize("level", list(LEVELS))
def test_a_hostile_level_of_the_state_area_is_refused(
    root_dir: Path, targets: Path, canaries: Canaries, level: str, plant: Plant
) -> None:
    for parent in reversed((root_dir / level).parents):
        if root_dir in parent.parents:
            parent.mkdir(mode=0o700, exist_ok=True)
    with (
        skip_if_not_permitted(),
        plant(root_dir / level, LEVELS[level](canaries)),
        _client(root_dir) as client,
    ):
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert "refused" in ready.json()["detail"]
        keyed = _delete(client, "d1", key="k")
        assert_problem(keyed, 503, "io_error")
        assert (root_dir / "d1").exists(), "a request whose record cannot be kept runs not"
        assert _delete(client, "d2").status_code == 200
        assert not (root_dir / "d2").exists()
        atomic = _atomic(client, "atomic")
        if level == ".stepd":
            assert_problem(atomic, 409, "atomic_unsupported")
            assert (root_dir / "atomic" / "sub" / "f").exists()
        else:
            assert atomic.status_code == 200, atomic.text


def test_an_area_moved_out_of_the_root_while_serving_is_made_anew(
    root_dir: Path, targets: Path, canaries: Canaries
) -> None:
    with _client(root_dir) as client:
        assert _delete(client, "d1", key="first").status_code == 200
        assert client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
        moved = canaries.top / "moved"
        (root_dir / ".stepd").rename(moved)
        canaries.before = canaries.records()  # the moved area is outside now: hands off
        assert _delete(client, "d2", key="second").status_code == 200
        again = _delete(client, "d2", key="second")
        assert again.headers["Idempotent-Replayed"] == "true"
        assert _atomic(client, "atomic").status_code == 200
        assert client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
    assert (root_dir / ".stepd" / "state" / DATABASE).is_file()
    assert not (root_dir / "d2").exists()


def test_an_area_replaced_by_another_directory_is_used_once_it_is_ours(
    root_dir: Path, targets: Path
) -> None:
    with _client(root_dir) as client:
        assert _delete(client, "d1").status_code == 200
        (root_dir / ".stepd").rename(root_dir / "d3" / "old-area")
        (root_dir / ".stepd").mkdir(mode=0o700)
        assert _delete(client, "d2").status_code == 200
        assert _atomic(client, "atomic").status_code == 200
        assert client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
        assert client.get("/readyz").json()["status"] == "ready"
    assert (root_dir / "d3" / "old-area").is_dir()  # a workspace directory now: untouched
    assert not (root_dir / "d2").exists()


@pytest.mark.parametrize("purge", ["background", "inline"])
def test_an_area_removed_while_serving_is_made_anew_every_time(
    root_dir: Path, targets: Path, purge: str
) -> None:
    with _client(root_dir, purge=purge) as client:
        for name in ("d1", "d2", "d3"):
            client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
            shutil.rmtree(root_dir / ".stepd", ignore_errors=True)
            response = _delete(client, name, key=f"key-{name}")
            assert response.status_code == 200, response.text
            assert not (root_dir / name).exists()
        client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
        shutil.rmtree(root_dir / ".stepd")
        assert _atomic(client, "atomic").status_code == 200
        ready = client.get("/readyz")
        assert ready.json()["status"] == "ready", ready.text


def test_deletes_racing_the_removal_of_the_area_succeed_and_name_no_trash(
    root_dir: Path,
) -> None:
    """A thread removes ``.stepd`` (or its trash) over and over while directories are
    deleted: each delete answers 200 and its target is gone, whichever way it went."""
    names = [f"r{n}" for n in range(40)]
    for name in names:
        (root_dir / name / "sub").mkdir(parents=True)
    stop = threading.Event()

    def remove_area() -> None:
        while not stop.is_set():
            shutil.rmtree(root_dir / ".stepd" / "trash", ignore_errors=True)
            shutil.rmtree(root_dir / ".stepd", ignore_errors=True)

    remover = threading.Thread(target=remove_area)
    with _client(root_dir) as client:
        remover.start()
        try:
            answers = [_delete(client, name) for name in names]
        finally:
            stop.set()
            remover.join()
    for name, answer in zip(names, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert not TRASH_ID.search(answer.text)
        assert not (root_dir / name).exists()


def test_no_problem_names_a_trash_directory(root_dir: Path, targets: Path) -> None:
    """Where the area cannot be made at all (a file stands at ``.stepd``), atomic batches
    fail, plain deletes still succeed, and no answer names anything internal."""
    with _client(root_dir) as client:
        assert _delete(client, "d1").status_code == 200
        assert client.app.state.purger.wait_idle(timeout=60)  # type: ignore[attr-defined]
        shutil.rmtree(root_dir / ".stepd")
        (root_dir / ".stepd").write_text("in the way")
        answers = [_delete(client, "d2"), _atomic(client, "atomic"), _delete(client, "d3", "k")]
    assert [answer.status_code for answer in answers] == [200, 409, 503]
    for answer in answers:
        assert not TRASH_ID.search(answer.text), answer.text
    assert "'.stepd'" in answers[1].json()["detail"]
