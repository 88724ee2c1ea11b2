"""Every entry of ``traversal_corpus.txt``, aimed at the tree of ``conftest.py``.

Each entry goes out as ``path``, inside ``paths`` and as a glob pattern, through HTTP to a
real server (every endpoint that runs delete steps), and in process through the steps
layer once per resolution mode (openat2 and the fallback walk, which the server cannot be
made to use). The answer may be a success or a 4xx problem with a catalogued code, never
a 5xx; and nothing outside the workspace, nor the reserved ``.stepd``, may change.
Whatever a request deleted inside the workspace is re-created before the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.problems import CATALOG, MEDIA_TYPE
from app.models.internal import DeleteConfig
from app.sandbox import Root
from app.sandbox.errors import SandboxError
from app.steps.workspace import RESERVED
from tests.fuzz.conftest import REQUESTS_SENT, Tree, make_tree, seed_workspace
from tests.steps.running import run_delete
from tests.support.corpus import CorpusEntry, read_corpus
from tests.support.endpoints import DELETE_ENDPOINTS, DeleteEndpoint
from tests.support.mounts import MountNotPermitted, bind_mount
from tests.support.server import Server, serve

CORPUS = read_corpus(Path(__file__).with_name("traversal_corpus.txt"))

# How an entry is put in a request, by name: as `path`, beside a harmless absent entry in
# `paths`, and alone in `paths` as a glob pattern.
MODES: dict[str, Callable[[str], dict[str, Any]]] = {
    "path": lambda entry: {"path": entry},
    "paths": lambda entry: {"paths": ["absent-neighbour", entry]},
    "glob": lambda entry: {"paths": [entry], "pathsAreGlobs": True},
}


class CorpusTree:
    """The seeded tree, with ``outside`` bind-mounted inside the workspace if we may."""

    def __init__(self, tree: Tree, mount_refused: str | None) -> None:
        self.tree = tree
        self.mount_refused = mount_refused

    def entry(self, entry: CorpusEntry) -> str:
        if entry.needs_mount and self.mount_refused:
            pytest.skip(f"bind mounts not permitted here: {self.mount_refused}")
        return entry.expand(outside=self.tree.outside, root=self.tree.root)


@pytest.fixture(scope="module")
def corpus_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusTree]:
    tree = make_tree(tmp_path_factory.mktemp("corpus"))
    bound, inner = tree.root / "bound", tree.root / "holder" / "inner"
    bound.mkdir()
    inner.mkdir(parents=True)
    with ExitStack() as mounts:
        try:
            mounts.enter_context(bind_mount(tree.outside, bound))
            mounts.enter_context(bind_mount(tree.outside / "sub", inner))
        except MountNotPermitted as refused:
            yield CorpusTree(tree, str(refused))
        else:
            yield CorpusTree(tree, None)


@pytest.fixture(scope="module")
def corpus_server(
    corpus_tree: CorpusTree, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with serve(corpus_tree.tree.root) as server:
        yield server


@pytest.fixture(scope="module")
def http(corpus_server: Server) -> Iterator[httpx.Client]:
    with corpus_server.client() as client:
        yield client


def _entry_id(entry: CorpusEntry) -> str:
    return f"line{entry.line}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("endpoint", DELETE_ENDPOINTS, ids=str)
@pytest.mark.parametrize("entry", CORPUS, ids=_entry_id)
def test_entry_through_http_stays_inside(
    entry: CorpusEntry,
    endpoint: DeleteEndpoint,
    mode: str,
    corpus_tree: CorpusTree,
    http: httpx.Client,
) -> None:
    tree = corpus_tree.tree
    text = corpus_tree.entry(entry)
    seed_workspace(tree)
    before = tree.protected()
    response = http.post(endpoint.url, json=endpoint.body(MODES[mode](text)))
    REQUESTS_SENT[f"traversal corpus via {endpoint} ({mode})"] += 1
    context = f"line {entry.line} {text[:80]!r} as {mode} to {endpoint}"
    assert response.status_code < 500, f"{context}: {response.status_code} {response.text}"
    if response.status_code != 200:
        assert response.headers["content-type"] == MEDIA_TYPE, context
        assert response.json()["code"] in CATALOG, context
    tree.assert_protected_unchanged(before, context)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", CORPUS, ids=_entry_id)
def test_entry_through_steps_layer_stays_inside_alike_in_both_modes(
    entry: CorpusEntry, mode: str, corpus_tree: CorpusTree
) -> None:
    tree = corpus_tree.tree
    text = corpus_tree.entry(entry)
    body = MODES[mode](text)
    config = DeleteConfig(
        paths=tuple(body.get("paths", [text])), globs=body.get("pathsAreGlobs", False)
    )
    context = f"line {entry.line} {text[:80]!r} as {mode}"
    outcomes = {}
    for name, use_openat2 in (("openat2", True), ("walk", False)):
        seed_workspace(tree)
        before = tree.protected()
        with Root.open(tree.root, reserved=RESERVED, use_openat2=use_openat2) as root:
            try:
                done = run_delete(root, config)
                outcomes[name] = ("deleted", *done.deleted, "absent", *done.absent)
            except SandboxError as refused:
                outcomes[name] = ("refused", refused.code)
        REQUESTS_SENT[f"traversal corpus in process ({name})"] += 1
        tree.assert_protected_unchanged(before, f"{context} ({name})")
    assert outcomes["openat2"] == outcomes["walk"], context


def test_the_guard_sees_a_change_made_through_a_link(corpus_tree: CorpusTree) -> None:
    tree = corpus_tree.tree
    seed_workspace(tree)
    before = tree.protected()
    precious = tree.root / "to-outside" / "precious.txt"
    kept = precious.read_text()
    precious.write_text("changed")
    try:
        with pytest.raises(AssertionError, match=r"outside/precious\.txt"):
            tree.assert_protected_unchanged(before, "a write through to-outside")
    finally:
        precious.write_text(kept)
