"""A delete step tells its observer the fate of every entry: deleted, absent or failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.models.internal import DeleteConfig
from app.sandbox import Root
from app.sandbox.errors import OutsideRoot
from app.steps.delete import run_delete
from app.steps.errors import TargetNotFound


class Recorder:
    """A ``DeleteObserver`` that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, str | None]] = []

    def deleted(self, path: str) -> None:
        self.events.append(("deleted", path, None))

    def absent(self, entry: str) -> None:
        self.events.append(("absent", entry, None))

    def failed(self, entry: str | None, code: str) -> None:
        self.events.append(("failed", entry, code))


def test_reports_deleted_and_absent_entries(root: Root, root_dir: Path) -> None:
    (root_dir / "a.txt").write_text("x")
    (root_dir / "dir").mkdir()
    recorder = Recorder()
    run_delete(root, DeleteConfig(paths=("a.txt", "gone", "dir")), recorder)
    assert sorted(recorder.events) == [
        ("absent", "gone", None),
        ("deleted", "a.txt", None),
        ("deleted", "dir", None),
    ]


def test_reports_glob_matches_and_patterns_matching_nothing(root: Root, root_dir: Path) -> None:
    (root_dir / "x.yaml").write_text("x")
    (root_dir / "y.yaml").write_text("y")
    recorder = Recorder()
    run_delete(root, DeleteConfig(paths=("*.yaml", "*.json"), globs=True), recorder)
    assert sorted(recorder.events) == [
        ("absent", "*.json", None),
        ("deleted", "x.yaml", None),
        ("deleted", "y.yaml", None),
    ]


def test_reports_each_strict_miss_as_failed(root: Root, root_dir: Path) -> None:
    (root_dir / "kept").write_text("x")
    recorder = Recorder()
    with pytest.raises(TargetNotFound):
        run_delete(root, DeleteConfig(paths=("kept", "a", "b"), strict=True), recorder)
    assert recorder.events == [("failed", "a", "not_found"), ("failed", "b", "not_found")]
    assert (root_dir / "kept").exists()


def test_reports_a_refused_entry_as_failed(root: Root) -> None:
    recorder = Recorder()
    with pytest.raises(OutsideRoot):
        run_delete(root, DeleteConfig(paths=("../outside/precious.txt",)), recorder)
    assert recorder.events == [("failed", "../outside/precious.txt", "path_outside_workspace")]


def test_absent_workspace_reports_every_entry_absent() -> None:
    recorder = Recorder()
    run_delete(None, DeleteConfig(paths=("a", "b")), recorder)
    assert recorder.events == [("absent", "a", None), ("absent", "b", None)]
