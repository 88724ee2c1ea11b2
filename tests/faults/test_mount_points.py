"""A mount point in the tree is refused as ``422 path_outside_workspace``, never ``busy``.

What is mounted there belongs to another filesystem (or, for a bind mount, to another
place in this one): deleting into it would remove files outside the workspace, and
retrying cannot help, so it is the permanent 422 ``path_outside_workspace`` rather than
the transient 409 ``busy`` (EBUSY is what rmdir on a mount point would say, but we refuse
before any rmdir). A directory holding a mount point is refused whole, before anything
is deleted; a glob walk passes mount points by.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import Site
from tests.support.endpoints import DeleteEndpoint
from tests.support.mounts import bind_mount, skip_if_not_permitted, tmpfs
from tests.support.problems import assert_problem


@pytest.fixture
def mounted(site: Site) -> Iterator[Path]:
    """A workspace with a tmpfs at ``holder/tmpfs``, ``outside`` bound at ``holder/bound``
    and the file ``outside/precious.txt`` bound at ``holder/bound-file.conf``."""
    workspace = site.workspace("mounts")
    for name in ("tmpfs", "bound"):
        (workspace / "holder" / name).mkdir(parents=True)
    (workspace / "holder" / "file.txt").write_text("beside the mounts")
    (workspace / "holder" / "bound-file.conf").write_text("mounted over")
    (workspace / "other.txt").write_text("no mount here")
    with (
        skip_if_not_permitted(),
        tmpfs(workspace / "holder" / "tmpfs"),
        bind_mount(site.outside, workspace / "holder" / "bound"),
        bind_mount(site.outside / "precious.txt", workspace / "holder" / "bound-file.conf"),
    ):
        (workspace / "holder" / "tmpfs" / "data.txt").write_text("on another filesystem")
        yield workspace


@pytest.mark.parametrize(
    "target",
    ["holder/tmpfs", "holder/bound", "holder/bound/precious.txt", "holder/bound-file.conf"],
)
def test_mount_point_and_what_it_holds_are_refused(
    site: Site, endpoint: DeleteEndpoint, mounted: Path, target: str
) -> None:
    before = site.snapshot_except()
    response = site.delete(endpoint, mounted.name, path=target)
    assert_problem(response, 422, "path_outside_workspace")
    site.assert_survived(endpoint, before)


def test_directory_holding_a_mount_point_is_refused_whole(
    site: Site, endpoint: DeleteEndpoint, mounted: Path
) -> None:
    before = site.snapshot_except()
    response = site.delete(endpoint, mounted.name, paths=["other.txt", "holder"])
    body = assert_problem(response, 422, "path_outside_workspace")
    assert body["path"] == "holder"
    assert (mounted / "other.txt").exists(), "resolved first: nothing is deleted"
    site.assert_survived(endpoint, before)


def test_glob_walk_passes_mount_points_by(
    site: Site, endpoint: DeleteEndpoint, mounted: Path
) -> None:
    targets = [mounted / "holder" / "file.txt", mounted / "other.txt"]
    before = site.snapshot_except(*targets)
    response = site.delete(endpoint, mounted.name, paths=["**/*.txt"], pathsAreGlobs=True)
    assert response.status_code == 200, response.text
    assert endpoint.outcome(response.json())["deleted"] == ["holder/file.txt", "other.txt"]
    assert (mounted / "holder" / "tmpfs" / "data.txt").exists()
    site.assert_survived(endpoint, before, *targets)
