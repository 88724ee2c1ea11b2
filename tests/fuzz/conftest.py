"""A seeded workspace beside an ``outside`` directory, and a real server over it.

The tree holds what an attacker would aim at: symlinks to ``outside`` (absolute, relative,
through chains), to ``/`` and to ``..``, loops, a dangling link, the reserved ``.stepd``
area, names that are not valid UTF-8, and a tree 70 levels deep that forks at every level
(past the descriptors a walk keeps open). ``seed_workspace`` re-creates whatever a request
deleted, so every request meets the whole tree; ``outside`` is created once and never
re-created, so a request that changed it cannot be hidden.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.idempotency.sqlite import DATABASE
from app.steps.workspace import RESERVED_NAME
from tests.support.server import Server, serve
from tests.support.snapshot import Snapshot, changes, snapshot
from tests.support.trash import trash_emptied
from tests.support.trees import BranchingTree, build_branching_tree

# Requests each suite sent, by what it was testing: printed at the end of the run.
REQUESTS_SENT: Counter[str] = Counter()

FILES = {
    "keep.txt": "keep",
    "out/manifests.yaml": "kind: ConfigMap\n",
    "out/nested/deep.txt": "deep",
    "gone/x": "x",
    "promo-42/charts/app/values-dev.yaml": "replicas: 1\n",
    "promo-42/tmp/cache/blob": "blob",
    "promo-42/keep.txt": "keep",
    f"{RESERVED_NAME}/canary.txt": "reserved: no request may reach this",
    f"{RESERVED_NAME}/state/canary.txt": "beside stepd's own records: no request may reach this",
}
# Names that are not valid UTF-8 (JSON cannot spell them: only a glob reaches them).
RAW_FILES = {
    b"caf\xe9.yaml": b"latin-1",
    b"\xff\xfe.tmp": b"not utf-8 at all",
    b"odd/\x80": b"a lone continuation byte",
    b"odd/x41-\\x41.tmp": b"a backslash that reads like an escape",
}
DEEP = BranchingTree("deep", 70, [], {})
# stepd's own records change as requests with an Idempotency-Key arrive.
OWN_STATE = tuple(f"{DATABASE}{suffix}" for suffix in ("", "-wal", "-shm"))


@dataclass(frozen=True)
class Tree:
    """The workspace ``root`` and its sibling ``outside``, both under ``base``."""

    base: Path
    root: Path
    outside: Path

    def links(self) -> dict[str, str]:
        """Symlinks in the workspace, by path: every way out we can think of, and loops."""
        return {
            "to-outside": str(self.outside),
            "to-outside-rel": "../outside",
            "to-precious": str(self.outside / "precious.txt"),
            "to-root": "/",
            "to-parent": "..",
            "to-self-dir": ".",
            "chain-1": "chain-2",
            "chain-2": "chain-3",
            "chain-3": "to-outside-rel",
            "chain-in": "dir-link",
            "dir-link": "out",
            "loop-a": "loop-b",
            "loop-b": "loop-a",
            "self-loop": "self-loop",
            "dangling": "nowhere/at/all",
            "out/up": "../..",
            "promo-42/escape": "../../outside",
        }

    def protected(self) -> Snapshot:
        """Everything a request must never change: all but the workspace, plus ``.stepd``
        (but for the idempotency records stepd itself keeps there), once the background
        purger has freed what deletes detached into the trash."""
        if (self.root / RESERVED_NAME / "trash").exists():
            assert trash_emptied(self.root), "the purger did not empty the trash"
        outside_root = snapshot(self.base, exclude=(self.root,))
        state = self.root / RESERVED_NAME / "state"
        reserved = snapshot(
            self.root / RESERVED_NAME, exclude=tuple(state / name for name in OWN_STATE)
        )
        return {**outside_root, **{f"{RESERVED_NAME}/{k}": v for k, v in reserved.items()}}

    def assert_protected_unchanged(self, before: Snapshot, context: str) -> None:
        diff = changes(before, self.protected())
        assert not diff, f"{context}: outside the workspace changed: {diff}"


def make_tree(base: Path) -> Tree:
    """A new tree under ``base``, seeded, with ``outside`` holding files, a dir and a link."""
    tree = Tree(base, base / "root", base / "outside")
    tree.root.mkdir()
    (tree.outside / "sub").mkdir(parents=True)
    (tree.outside / "precious.txt").write_text("keep me")
    (tree.outside / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (tree.outside / "link-back").symlink_to("../root")
    (base / "sibling.txt").write_text("beside the root")
    seed_workspace(tree)
    return tree


def seed_workspace(tree: Tree, *, reserved: bool = True) -> None:
    """Re-create whatever is missing in the workspace (``outside`` is never touched), and
    in ``.stepd`` unless not ``reserved`` (a test that replaced it with a symlink)."""
    for rel, text in FILES.items():
        path = tree.root / rel
        if not reserved and rel.startswith(f"{RESERVED_NAME}/"):
            continue
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for rel, target in tree.links().items():
        path = tree.root / rel
        if not path.is_symlink():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
    for raw, content in RAW_FILES.items():
        path = os.fsencode(tree.root) + b"/" + raw
        if not os.path.lexists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(content)
    if not all(os.path.lexists(tree.root / rel) for rel in DEEP.entries()):
        subprocess.run(["rm", "-rf", "--", str(tree.root / DEEP.top)], check=True)
        build_branching_tree(tree.root, DEEP.depth, DEEP.top)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return make_tree(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def server(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tree.root) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many requests the fuzz suites sent (the figures in docs/RELIABILITY.md)."""
    if REQUESTS_SENT:
        terminalreporter.section("fuzz requests sent")
        for name, count in sorted(REQUESTS_SENT.items()):
            terminalreporter.write_line(f"{count:6d}  {name}")
