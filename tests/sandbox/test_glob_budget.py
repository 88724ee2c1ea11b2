"""Bounded work per request: one walk per step whatever its patterns, a cap on brace
alternatives, and a budget of entries visited, refused before anything is deleted."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from app.models.internal import DeleteConfig
from app.sandbox import Root
from app.sandbox.errors import GlobTooBroad, InvalidPattern
from app.sandbox.fd import identity
from app.sandbox.glob import MAX_ALTERNATIVES, MAX_STEP_ALTERNATIVES, Budget
from app.steps.delete import plan_delete
from tests.steps.running import run_delete
from tests.support.snapshot import snapshot
from tests.support.trees import deep_tree

BRACES = "{" + ",".join(f"n{i}" for i in range(MAX_ALTERNATIVES)) + "}"


@pytest.fixture
def broad(root_dir: Path) -> Path:
    """Ten directories of ten subdirectories of ten files: 1 110 entries."""
    for d in range(10):
        for s in range(10):
            sub = root_dir / f"d{d}" / f"s{s}"
            sub.mkdir(parents=True)
            for f in range(10):
                (sub / f"n{f * 10 + s}").write_text("x")
    return root_dir


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[int, int]]:
    """How often each directory (by device and inode) is listed."""
    counted: Counter[tuple[int, int]] = Counter()
    real = os.scandir

    def scandir(path: int) -> object:
        if isinstance(path, int):
            counted[identity(path)] += 1
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return counted


def test_a_step_reads_each_directory_once_whatever_its_patterns(
    root: Root, broad: Path, listings: Counter[tuple[int, int]]
) -> None:
    patterns = (f"**/{BRACES}", "**/n1*", "d?/**/n7", "*/s[0-4]/*", "**/s9", "**/n99")
    plan = plan_delete(root, DeleteConfig(paths=patterns, globs=True))
    assert len(listings) == 1 + 10 + 100
    assert max(listings.values()) == 1
    assert len(plan.targets) == 1000 + 10  # every n* file, and each s9 directory


def test_a_deep_chain_costs_work_in_proportion_to_its_depth(tmp_path: Path) -> None:
    depth = 3000
    with deep_tree(tmp_path, depth, name="c", leaf="x") as leaf:
        for use_openat2 in (True, False):
            budget = Budget(10 * depth)
            with Root.open(tmp_path, use_openat2=use_openat2) as root:
                found = root.glob_all(["**/x", "**/nothing", "c/**/x"], budget)
            assert found == [[leaf], [], [leaf]]
            assert budget.limit - budget.left < 10 * depth


def test_past_the_budget_nothing_is_deleted(root: Root, broad: Path) -> None:
    before = snapshot(broad)
    with pytest.raises(GlobTooBroad) as refused:
        run_delete(root, DeleteConfig(paths=("**/n1", "**/n2"), globs=True), Budget(1000))
    assert refused.value.code == "glob_too_broad"
    assert snapshot(broad) == before


def test_within_the_budget_the_same_step_runs(root: Root, broad: Path) -> None:
    done = run_delete(root, DeleteConfig(paths=("**/n1", "**/n2"), globs=True), Budget(10_000))
    assert len(done.deleted) == 20


def test_the_budget_is_shared_by_the_steps_it_is_given_to(root: Root, broad: Path) -> None:
    budget = Budget(2000)
    run_delete(root, DeleteConfig(paths=("**/n1",), globs=True), budget)
    with pytest.raises(GlobTooBroad):
        run_delete(root, DeleteConfig(paths=("**/n2",), globs=True), budget)


def test_comparing_long_names_with_long_segments_costs_more(root: Root, root_dir: Path) -> None:
    for n in range(20):
        (root_dir / (f"{n:02}" + "a" * 250)).write_text("x")
    cheap, dear = Budget(10**6), Budget(10**6)
    root.glob_all(["*b"], cheap)
    root.glob_all(["*" + "[a-z]" * 50 + "!"], dear)
    assert dear.limit - dear.left > 20 * (cheap.limit - cheap.left)


def test_a_pattern_expands_to_at_most_max_alternatives(root: Root) -> None:
    root.glob("{" + ",".join(map(str, range(MAX_ALTERNATIVES))) + "}")
    with pytest.raises(InvalidPattern):
        root.glob("{" + ",".join(map(str, range(MAX_ALTERNATIVES + 1))) + "}")
    with pytest.raises(InvalidPattern):
        root.glob("{a,b}" * 9)


def test_a_step_expands_to_at_most_max_step_alternatives(root: Root, root_dir: Path) -> None:
    full = MAX_STEP_ALTERNATIVES // MAX_ALTERNATIVES
    root.glob_all([BRACES] * full)
    with pytest.raises(InvalidPattern):
        root.glob_all([BRACES] * full + ["x"])
    with pytest.raises(InvalidPattern):
        run_delete(root, DeleteConfig(paths=(BRACES,) * (full + 1), globs=True))
