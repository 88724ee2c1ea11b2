"""A full disk (no block and no inode left) does not keep stepd from deleting.

Removing frees space and needs none, so deletes succeed on a full filesystem and free
what they remove. The answer for an operation that does need space is ``507 no_space``.
The journal of atomic batches (issue 3) is written to ``.stepd`` on this same full
filesystem: its ENOSPC case belongs with the batch endpoint and uses ``full_disk_site``.
"""

from __future__ import annotations

from tests.faults.conftest import Site
from tests.support.endpoints import DeleteEndpoint


def test_deletes_succeed_on_a_full_disk(full_disk_site: Site, endpoint: DeleteEndpoint) -> None:
    site = full_disk_site
    targets = [site.root / "target.txt", site.root / "tree"]
    before = site.snapshot_except(*targets)
    response = site.delete(endpoint, None, paths=["target.txt", "tree"], strict=True)
    assert response.status_code == 200, response.text
    assert endpoint.outcome(response.json())["deleted"] == ["target.txt", "tree"]
    assert site.http.get("/readyz").status_code == 200
    site.assert_survived(endpoint, before, *targets)


def test_globs_delete_on_a_full_disk(full_disk_site: Site, endpoint: DeleteEndpoint) -> None:
    site = full_disk_site
    targets = [site.root / "target.txt", site.root / "tree" / "a" / "b.txt"]
    before = site.snapshot_except(*targets)
    response = site.delete(endpoint, None, paths=["**/*.txt"], pathsAreGlobs=True)
    assert response.status_code == 200, response.text
    assert endpoint.outcome(response.json())["deleted"] == ["target.txt", "tree/a/b.txt"]
    site.assert_survived(endpoint, before, *targets)
