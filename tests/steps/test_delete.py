"""The delete step's domain: plan (resolve everything), then apply; idempotent by default."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from app.models.internal import DeleteConfig
from app.sandbox import Root
from app.sandbox.errors import InvalidPath, InvalidPattern, OutsideRoot, SymlinkLoop
from app.steps.delete import DeleteOutcome, plan_delete
from app.steps.errors import TargetNotFound
from tests.steps.running import apply_delete, open_workspace, run_delete
from tests.support.mounts import bind_mount, skip_if_not_permitted
from tests.support.snapshot import snapshot


def config(*paths: str, globs: bool = False, strict: bool = False) -> DeleteConfig:
    return DeleteConfig(paths=paths, globs=globs, strict=strict)


@pytest.fixture
def files(root_dir: Path) -> Path:
    """``a`` (a directory with a file), ``b.txt``, ``c.txt``."""
    (root_dir / "a").mkdir()
    (root_dir / "a" / "f").write_text("x")
    (root_dir / "b.txt").write_text("x")
    (root_dir / "c.txt").write_text("x")
    return root_dir


class TestIdempotence:
    def test_existing_entries_are_deleted_and_reported(self, root: Root, files: Path) -> None:
        outcome = run_delete(root, config("a", "b.txt"))
        assert outcome == DeleteOutcome(deleted=["a", "b.txt"], absent=[])
        assert sorted(p.name for p in files.iterdir()) == ["c.txt"]

    def test_a_missing_target_is_success(self, root: Root) -> None:
        assert run_delete(root, config("gone")) == DeleteOutcome(deleted=[], absent=["gone"])

    def test_running_twice_is_the_same_as_once(self, root: Root, files: Path) -> None:
        run_delete(root, config("a"))
        assert run_delete(root, config("a")) == DeleteOutcome(deleted=[], absent=["a"])

    @pytest.mark.parametrize(
        ("path", "normalised"),
        [
            ("./gone/", "gone"),
            ("x//y/./", "x/y"),
            ("x/../gone", "gone"),
            ("b.txt/child", "b.txt/child"),
        ],
    )
    def test_absent_lists_normalised_paths(
        self, root: Root, files: Path, path: str, normalised: str
    ) -> None:
        assert run_delete(root, config(path)).absent == [normalised]

    def test_deleted_lists_normalised_paths_in_request_order(self, root: Root, files: Path) -> None:
        outcome = run_delete(root, config("./c.txt", "a/", "b.txt"))
        assert outcome.deleted == ["c.txt", "a", "b.txt"]

    def test_absent_targets_are_logged_at_debug_level(
        self, root: Root, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="app.steps.delete"):
            run_delete(root, config("gone", "no_such_dir/child.txt"))
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        assert any("gone" in message for message in logged)
        assert any("no_such_dir/child.txt" in message for message in logged)

    def test_absent_glob_patterns_are_logged_as_given(
        self, root: Root, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="app.steps.delete"):
            run_delete(root, config("nothing/**", globs=True))
        assert any("nothing/**" in r.getMessage() for r in caplog.records)


class TestResolveAllFirst:
    """A strict failure or a refused entry deletes nothing at all."""

    @pytest.mark.parametrize(
        ("paths", "error"),
        [
            (("a", "../x"), OutsideRoot),
            (("a", "/etc/passwd"), InvalidPath),
            (("a", "b.txt", "."), InvalidPath),
            (("a", "x\x00y"), InvalidPath),
            (("a", "out/precious.txt"), OutsideRoot),
            (("a", "loop/x"), SymlinkLoop),
        ],
    )
    def test_a_refused_entry_deletes_nothing(
        self, root: Root, files: Path, paths: tuple[str, ...], error: type[Exception]
    ) -> None:
        (files / "out").symlink_to("../outside")
        (files / "loop").symlink_to("loop")
        before = snapshot(files.parent)
        with pytest.raises(error):
            run_delete(root, config(*paths))
        assert snapshot(files.parent) == before

    def test_a_strict_failure_deletes_nothing(self, root: Root, files: Path) -> None:
        before = snapshot(files)
        with pytest.raises(TargetNotFound) as caught:
            run_delete(root, config("a", "gone", "b.txt", "./also/gone/", strict=True))
        assert caught.value.missing == ["gone", "also/gone"]
        assert caught.value.code == "not_found"
        assert snapshot(files) == before

    def test_an_invalid_pattern_deletes_nothing(self, root: Root, files: Path) -> None:
        before = snapshot(files)
        with pytest.raises(InvalidPattern):
            run_delete(root, config("*.txt", "[unclosed", globs=True))
        assert snapshot(files) == before

    def test_a_mount_point_in_any_entry_deletes_nothing(self, root: Root, files: Path) -> None:
        source = files.parent / "outside"
        (files / "m").mkdir()
        with skip_if_not_permitted(), bind_mount(source, files / "m"):
            # A snapshot lists a mount point without entering it: take what is mounted too.
            before = snapshot(files), snapshot(source)
            with pytest.raises(OutsideRoot):
                run_delete(root, config("a", "b.txt", "m"))
            with pytest.raises(OutsideRoot):
                run_delete(root, config("*", globs=True))
            assert (snapshot(files), snapshot(source)) == before

    def test_the_plan_is_made_before_anything_is_applied(self, root: Root, files: Path) -> None:
        plan = plan_delete(root, config("a", "gone", "b.txt"))
        assert [entry.path for entry in plan.targets] == ["a", "b.txt"]
        assert plan.absent == ["gone"]
        assert (files / "a").exists()
        assert apply_delete(root, plan) == DeleteOutcome(deleted=["a", "b.txt"], absent=["gone"])


class TestDuplicatesAndVanishing:
    def test_two_spellings_of_one_entry_are_deleted_once(self, root: Root, files: Path) -> None:
        assert run_delete(root, config("a", "./a/", "a//")).deleted == ["a"]

    def test_an_entry_reached_through_a_symlink_is_deleted_once(
        self, root: Root, files: Path
    ) -> None:
        (files / "l").symlink_to("a")
        assert run_delete(root, config("l/f", "a/f")).deleted == ["l/f"]
        assert (files / "l").is_symlink()
        assert not (files / "a" / "f").exists()

    def test_a_pattern_and_a_path_naming_one_entry_are_deleted_once(
        self, root: Root, files: Path
    ) -> None:
        assert run_delete(root, config("*.txt", "b.txt", globs=True)).deleted == [
            "b.txt",
            "c.txt",
        ]

    def test_an_entry_inside_one_deleted_earlier_is_not_an_error(
        self, root: Root, files: Path
    ) -> None:
        outcome = run_delete(root, config("a", "a/f"))
        assert outcome == DeleteOutcome(deleted=["a", "a/f"], absent=[])
        assert not (files / "a").exists()

    def test_an_entry_removed_between_plan_and_apply_is_not_an_error(
        self, root: Root, files: Path
    ) -> None:
        plan = plan_delete(root, config("a", "b.txt"))
        shutil.rmtree(files / "a")
        (files / "b.txt").unlink()
        assert apply_delete(root, plan) == DeleteOutcome(deleted=["a", "b.txt"], absent=[])


class TestWorkspaces:
    def test_an_absent_workspace_makes_every_target_absent(self) -> None:
        outcome = run_delete(None, config("a", "./b/", "c/*", globs=False))
        assert outcome == DeleteOutcome(deleted=[], absent=["a", "b", "c/*"])

    def test_an_absent_workspace_keeps_patterns_as_given(self) -> None:
        outcome = run_delete(None, config("**/*.yaml", globs=True))
        assert outcome == DeleteOutcome(deleted=[], absent=["**/*.yaml"])

    def test_an_absent_workspace_is_strict_too(self) -> None:
        with pytest.raises(TargetNotFound):
            run_delete(None, config("a", strict=True))

    @pytest.mark.parametrize(
        ("paths", "globs", "error"),
        [
            (("../x",), False, OutsideRoot),
            (("/x",), False, InvalidPath),
            (("[x",), True, InvalidPattern),
            (("../*",), True, OutsideRoot),
        ],
    )
    def test_an_absent_workspace_still_rejects_bad_entries(
        self, paths: tuple[str, ...], globs: bool, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            run_delete(None, config(*paths, globs=globs))

    def test_a_named_workspace_confines_the_step(self, root: Root, root_dir: Path) -> None:
        (root_dir / "ws" / "out").mkdir(parents=True)
        (root_dir / "sibling.txt").write_text("x")
        with open_workspace(root, "ws") as workspace:
            assert workspace is not None
            assert run_delete(workspace, config("out")).deleted == ["out"]
            with pytest.raises(OutsideRoot):
                run_delete(workspace, config("../sibling.txt"))
        assert (root_dir / "sibling.txt").exists()

    def test_a_missing_named_workspace_is_none(self, root: Root) -> None:
        with open_workspace(root, "nope") as workspace:
            assert workspace is None


class TestGlobs:
    def test_top_most_matches_are_deleted_and_reported(self, root: Root, files: Path) -> None:
        outcome = run_delete(root, config("**", globs=True))
        assert outcome.deleted == ["a", "b.txt", "c.txt"]
        assert list(files.iterdir()) == []

    def test_a_matched_symlink_is_deleted_as_a_link(self, root: Root, files: Path) -> None:
        (files / "link").symlink_to("a")
        assert run_delete(root, config("l*", globs=True)).deleted == ["link"]
        assert (files / "a" / "f").exists()

    def test_a_pattern_matching_nothing_is_absent(self, root: Root, files: Path) -> None:
        outcome = run_delete(root, config("*.txt", "./nothing*/", globs=True))
        assert outcome == DeleteOutcome(deleted=["b.txt", "c.txt"], absent=["./nothing*/"])

    def test_strict_fails_on_a_pattern_matching_nothing(self, root: Root, files: Path) -> None:
        before = snapshot(files)
        with pytest.raises(TargetNotFound) as caught:
            run_delete(root, config("*.txt", "*.nothing", globs=True, strict=True))
        assert caught.value.missing == ["*.nothing"]
        assert snapshot(files) == before

    @pytest.mark.parametrize("name", ["a[1].txt", "*", "?x", "{a,b}", "\\x", "**"])
    def test_without_globs_metacharacters_are_literal(
        self, root: Root, root_dir: Path, name: str
    ) -> None:
        for other in ("a1.txt", "ax", "a", "b", "x", "keep"):
            (root_dir / other).write_text("x")
        (root_dir / name).write_text("x")
        assert run_delete(root, config(name)).deleted == [name]
        assert not (root_dir / name).exists()
        assert sorted(p.name for p in root_dir.iterdir()) == sorted(
            {"a1.txt", "ax", "a", "b", "x", "keep"} - {name}
        )

    def test_without_globs_a_pattern_is_a_missing_file_name(self, root: Root, files: Path) -> None:
        assert run_delete(root, config("*.txt")) == DeleteOutcome(deleted=[], absent=["*.txt"])
        assert (files / "b.txt").exists()
