"""Deep trees that fork: every walk keeps a bounded number of descriptors at any depth.

The walks (glob, tree removal, the component walk of a path through symlinks) close the
shallow levels of a deep branch and re-open them through ``..``. A tree that forks at
every level makes them climb back and go down again across that boundary again and again;
depths around it (``OPEN_LEVELS`` = 64) and far beyond, in both resolution modes.
"""

from __future__ import annotations

import os
import resource
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.sandbox import EntryKind, Root
from app.sandbox.fd import OPEN_LEVELS
from app.steps.workspace import RESERVED
from tests.support.snapshot import snapshot
from tests.support.trees import BranchingTree, branching_tree, chain

DEPTHS = [1, OPEN_LEVELS - 1, OPEN_LEVELS, OPEN_LEVELS + 1, 200, 5000]
MODES = [True, False]
# Descriptors a walk may use at any depth: its open levels, and a few for the work.
FEW = 2 * OPEN_LEVELS


@pytest.fixture(scope="module", params=DEPTHS, ids=lambda depth: f"depth{depth}")
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, BranchingTree]]:
    """A tree the tests below only read, built once per depth."""
    base = tmp_path_factory.mktemp("forking")
    with branching_tree(base, request.param) as built:
        yield base, built


@contextmanager
def few_descriptors() -> Iterator[None]:
    """At most ``FEW`` more descriptors than are open now, for the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    directories = _open_directories()
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + FEW, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert _open_directories() == directories, "a walk left descriptors open"


def _open_directories() -> set[tuple[int, int]]:
    """The process's open directory descriptors (number and inode): what a walk opens.
    Other descriptors are left out, so that another thread's sockets or event loop cannot
    make the count differ."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        with suppress(OSError):  # the listing's own descriptor, closed by now
            status = os.stat(f"/proc/self/fd/{name}")
            if stat.S_ISDIR(status.st_mode):
                found.add((int(name), status.st_ino))
    return found


@pytest.fixture(params=MODES, ids=["openat2", "walk"])
def shared_root(
    request: pytest.FixtureRequest, shared: tuple[Path, BranchingTree]
) -> Iterator[tuple[Root, BranchingTree]]:
    """The shared tree's root, in each resolution mode."""
    base, tree = shared
    with Root.open(base, reserved=RESERVED, use_openat2=request.param) as root:
        yield root, tree


def test_globstar_finds_the_leaves_below_every_fork(
    shared_root: tuple[Root, BranchingTree],
) -> None:
    root, tree = shared_root
    with few_descriptors():
        assert root.glob("**/leaf") == tree.leaves
        assert root.glob(f"{tree.top}/**/b?") == [
            leaf.removesuffix("/leaf") for leaf in tree.leaves
        ]
        assert len(root.glob("**/s/f")) == tree.depth


def test_a_path_through_a_symlink_climbing_back_resolves(
    shared_root: tuple[Root, BranchingTree],
) -> None:
    root, tree = shared_root
    with few_descriptors():
        for path, real_path in tree.through_links.items():
            entry = root.lookup(path, limited=False)
            assert entry is not None
            assert (entry.kind, entry.real_path) == (EntryKind.FILE, real_path)


@pytest.fixture(params=DEPTHS, ids=lambda depth: f"depth{depth}")
def tree(request: pytest.FixtureRequest, root_dir: Path) -> Iterator[BranchingTree]:
    with branching_tree(root_dir, request.param) as built:
        yield built


def test_the_whole_tree_is_removed_entry_by_entry(
    root: Root, root_dir: Path, tree: BranchingTree
) -> None:
    outside = snapshot(root_dir.parent / "outside")
    removed: list[None] = []
    with few_descriptors():
        gone: set[str] = set()
        for path, real_path in tree.through_links.items():
            assert root.remove(path, limited=False) is (real_path not in gone)
            assert root.lookup(real_path, limited=False) is None
            gone.add(real_path)
            link = path.removesuffix("/f")
            assert root.lookup(link, limited=False) is not None  # the link itself stays
        # Paced, as the purger frees the trash.
        assert root.remove(tree.top, pace=lambda: removed.append(None)) is True
    assert not (root_dir / tree.top).exists()
    # Per level: d (or the top), s, s/f (but the f removed first, one or two); b0, b1,
    # their leaves, and the two links.
    assert len(removed) == 3 * tree.depth - len(set(tree.through_links.values())) + 6
    assert snapshot(root_dir.parent / "outside") == outside


# Random shapes around the boundary: a chain with side branches of random lengths forking
# off at random levels, each ending in a leaf.
shapes = st.lists(st.tuples(st.integers(0, 140), st.integers(1, 90)), min_size=1, max_size=6).map(
    sorted
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(OPEN_LEVELS - 8, 150), branches=shapes, use_openat2=st.booleans())
def test_any_forking_shape_is_globbed_and_removed_whole(
    tmp_path_factory: pytest.TempPathFactory,
    depth: int,
    branches: list[tuple[int, int]],
    use_openat2: bool,
) -> None:
    base = tmp_path_factory.mktemp("shape")
    leaves = [chain(base, ["t", *["c"] * (depth - 1)], "leaf")]
    for n, (level, length) in enumerate(branches):
        at = ["t", *["c"] * min(level, depth - 1)]
        leaves.append(chain(base, [*at, *[f"x{n}"] * length], "leaf"))
    expected = sorted(set(leaves), key=lambda path: tuple(path.split("/")))
    with Root.open(base, reserved=RESERVED, use_openat2=use_openat2) as root:
        assert root.glob("**/leaf") == expected
        assert root.remove("t") is True
    assert os.listdir(base) == []
