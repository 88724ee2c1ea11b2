"""A read-only workspace filesystem gives ``409 read_only_filesystem``, and recovers.

The root is a tmpfs remounted read-only under a running server: every delete that would
change something is refused with 409 and nothing changes; ``/readyz`` says 503
``not_ready`` while ``/healthz`` stays 200. Remounted read-write, the same server deletes
again without a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import Site, assert_problem, make_site, serve_site
from tests.support.endpoints import DeleteEndpoint
from tests.support.mounts import MountNotPermitted, remount, tmpfs


@pytest.fixture
def read_only_site(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = make_site(tmp_path)
    try:
        with tmpfs(root):
            (root / "target.txt").write_text("cannot go")
            (root / "tree" / "a").mkdir(parents=True)
            (root / "tree" / "a" / "b.txt").write_text("cannot go either")
            remount(root, "ro")
            log = tmp_path_factory.mktemp("logs") / "server.log"
            with serve_site(tmp_path, root, log) as running:
                yield running
    except MountNotPermitted as refused:
        pytest.skip(f"mounting is not permitted here: {refused}")


@pytest.mark.parametrize(
    "config",
    [
        {"path": "target.txt"},
        {"path": "tree"},
        {"paths": ["**/*.txt"], "pathsAreGlobs": True},
    ],
    ids=["file", "directory", "glob"],
)
def test_read_only_root_refuses_then_recovers(
    read_only_site: Site, endpoint: DeleteEndpoint, config: dict[str, object]
) -> None:
    site = read_only_site
    before = site.snapshot_except()
    response = site.delete(endpoint, None, **config)
    assert_problem(response, 409, "read_only_filesystem")
    assert_problem(site.http.get("/readyz"), 503, "not_ready")
    assert site.http.get("/healthz").status_code == 200
    assert site.delete(endpoint, None, path="absent").status_code == 200
    remount(site.root, "rw")
    assert site.http.get("/readyz").status_code == 200
    site.assert_survived(endpoint, before)
