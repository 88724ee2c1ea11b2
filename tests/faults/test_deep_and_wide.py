"""A tree deeper than 1000 levels, one that forks at every level past the descriptors a
walk keeps open, and a directory with 100 000 entries.

Deleting any is one request that succeeds: removal is iterative with a bounded number of
descriptors (the server runs with at most 1024 open files), a glob match deeper than
PATH_MAX (4096 bytes) is still resolved and deleted, and the purger frees what a delete
detached into the trash, in the background or inline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import Site, limit_open_files, make_site
from tests.support.endpoints import DELETE_ENDPOINTS, DeleteEndpoint
from tests.support.server import serve
from tests.support.trees import branching_tree, deep_tree

DEPTH = 1500  # 1500 * len("ddd/") = 6000 bytes: more than PATH_MAX as a single path
FORKING = 70  # past the 64 levels a walk keeps open
WIDTH = 100_000


def test_deep_tree_is_deleted_by_path(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("deep")
    with deep_tree(workspace, DEPTH, name="ddd"):
        (workspace / "kept.txt").write_text("not a target")
        before = site.snapshot_except(workspace / "ddd")
        response = site.delete(endpoint, workspace.name, path="ddd")
        assert response.status_code == 200, response.text
        assert endpoint.outcome(response.json())["deleted"] == ["ddd"]
        assert not (workspace / "ddd").exists()
        site.assert_survived(endpoint, before, workspace / "ddd")


def test_deep_leaf_is_matched_and_deleted_by_globstar(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("deep-glob")
    with deep_tree(workspace, DEPTH, name="ddd", leaf="leaf.txt") as leaf:
        before = site.snapshot_except(workspace / leaf)
        response = site.delete(endpoint, workspace.name, paths=["**/leaf.txt"], pathsAreGlobs=True)
        assert response.status_code == 200, response.text
        assert endpoint.outcome(response.json())["deleted"] == [leaf]
        site.assert_survived(endpoint, before, workspace / leaf)


def test_directory_with_100k_entries_is_deleted(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("wide")
    wide = workspace / "wide"
    wide.mkdir()
    fd = os.open(wide, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index in range(WIDTH):
            os.close(os.open(f"f{index}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    (workspace / "kept.txt").write_text("not a target")
    before = site.snapshot_except(wide)
    response = site.delete(endpoint, workspace.name, path="wide", strict=True)
    assert response.status_code == 200, response.text
    assert not wide.exists()
    site.assert_survived(endpoint, before, wide)


def test_deep_forking_tree_is_deleted_and_freed(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("forking")
    with branching_tree(workspace, FORKING) as tree:
        before = site.snapshot_except(workspace / tree.top)
        response = site.delete(endpoint, workspace.name, path=tree.top)
        assert response.status_code == 200, response.text
        assert not (workspace / tree.top).exists()
        site.assert_survived(endpoint, before, workspace / tree.top)  # the trash is empty


def test_deep_forking_leaves_are_matched_by_globstar(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("forking-glob")
    with branching_tree(workspace, FORKING) as tree:
        leaves = [workspace / leaf for leaf in tree.leaves]
        before = site.snapshot_except(*leaves)
        response = site.delete(endpoint, workspace.name, paths=["**/leaf"], pathsAreGlobs=True)
        assert response.status_code == 200, response.text
        assert endpoint.outcome(response.json())["deleted"] == tree.leaves
        site.assert_survived(endpoint, before, *leaves)


def test_a_path_through_a_symlink_deep_down_is_deleted(
    site: Site, endpoint: DeleteEndpoint
) -> None:
    workspace = site.workspace("forking-link")
    with branching_tree(workspace, FORKING) as tree:
        through, real = next(iter(tree.through_links.items()))
        before = site.snapshot_except(workspace / real)
        response = site.delete(endpoint, workspace.name, path=through, strict=True)
        assert response.status_code == 200, response.text
        assert endpoint.outcome(response.json())["deleted"] == [through]
        site.assert_survived(endpoint, before, workspace / real)


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, httpx.Client]]:
    """A server purging inline (nothing detached) over a root of its own."""
    base = tmp_path_factory.mktemp("inline")
    root = make_site(base)
    env = {"STEPD_PURGE": "inline"}
    with serve(root, env=env, preexec_fn=limit_open_files) as server, server.client() as http:
        yield root, http


@pytest.mark.parametrize("endpoint", DELETE_ENDPOINTS, ids=str)
def test_deep_forking_tree_is_deleted_inline(
    inline: tuple[Path, httpx.Client], endpoint: DeleteEndpoint
) -> None:
    root, http = inline
    with branching_tree(root, FORKING, top=f"inline-{endpoint.url.rsplit('/', 1)[1]}") as tree:
        response = http.post(endpoint.url, json=endpoint.body({"path": tree.top}))
        assert response.status_code == 200, response.text
        assert not (root / tree.top).exists()
