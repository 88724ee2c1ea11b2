"""A tree deeper than 1000 levels and a directory with 100 000 entries.

Deleting either is one request that succeeds: removal is iterative with a bounded number
of descriptors (the server runs with at most 1024 open files), and a glob match deeper
than PATH_MAX (4096 bytes) is still resolved and deleted.
"""

from __future__ import annotations

import os

from tests.faults.conftest import Site
from tests.support.endpoints import DeleteEndpoint
from tests.support.trees import deep_tree

DEPTH = 1500  # 1500 * len("ddd/") = 6000 bytes: more than PATH_MAX as a single path
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
