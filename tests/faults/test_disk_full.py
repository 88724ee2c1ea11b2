"""A full disk (no block and no inode left) does not keep stepd from deleting.

Removing frees space and needs none, so deletes succeed on a full filesystem and free
what they remove: a plain delete needs neither the lock file, nor the journal, nor the
idempotency store. What does need space answers ``507 no_space`` and changes nothing: a
request with an Idempotency-Key whose record cannot be written, and an atomic batch
whose journal cannot be written (``.stepd`` is on this same full filesystem). A server
started on a full disk starts degraded, and recovers once there is room, without restart.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import Site, degraded_start_lines, fill_up
from tests.support.endpoints import DELETE_ENDPOINTS, DeleteEndpoint
from tests.support.problems import assert_problem

BATCH = next(endpoint for endpoint in DELETE_ENDPOINTS if endpoint.url == "/steps/batch")


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


def test_start_on_a_full_disk_is_degraded_not_failed(full_disk_site: Site) -> None:
    site = full_disk_site
    [line] = degraded_start_lines(site)
    assert "no_space" in line["message"]
    assert "Traceback" not in site.server.output()
    response = site.http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "degraded"
    assert "full" in response.json()["detail"]


def test_a_key_needs_space_a_plain_delete_does_not(
    full_disk_site: Site, endpoint: DeleteEndpoint
) -> None:
    site = full_disk_site
    before = site.snapshot_except(site.root / "target.txt")
    keyed = site.http.post(
        endpoint.url,
        json=endpoint.body({"path": "target.txt"}),
        headers={"Idempotency-Key": "full-disk"},
    )
    assert_problem(keyed, 507, "no_space")
    assert (site.root / "target.txt").exists()
    plain = site.delete(endpoint, None, path="target.txt")
    assert plain.status_code == 200, plain.text
    assert endpoint.outcome(plain.json())["deleted"] == ["target.txt"]
    site.assert_survived(endpoint, before, site.root / "target.txt")


@pytest.mark.parametrize("inodes", [False, True], ids=["journal-write", "journal-create"])
def test_atomic_batch_whose_journal_cannot_be_written(filling_site: Site, inodes: bool) -> None:
    """With no block left the journal's first record cannot be written; with no inode
    left either, not even its directory can be made. Either way: 507, nothing deleted."""
    site = filling_site
    fill_up(site.root, inodes=inodes)
    before = site.snapshot_except()
    batch = {
        "atomic": True,
        "steps": [
            {"uses": "delete", "as": "file", "config": {"path": "target.txt"}},
            {"uses": "delete", "as": "tree", "config": {"path": "tree"}},
        ],
    }
    body = assert_problem(site.http.post("/steps/batch", json=batch), 507, "no_space")
    assert body["failedStep"] == "file"
    assert body["rolledBack"] is True
    assert [step["status"] for step in body["steps"]] == ["Errored", "Skipped"]
    assert site.snapshot_except() == before
    assert site.staged() == []
    assert site.http.get("/healthz").status_code == 200
    # Space comes back: the same batch now runs, with no restart.
    for filler in (site.root / "filler", *site.root.glob("inode-*")):
        filler.unlink()
    targets = [site.root / "target.txt", site.root / "tree"]
    before = site.snapshot_except(*targets)
    done = site.http.post("/steps/batch", json=batch)
    assert done.status_code == 200, done.text
    assert not any(target.exists() for target in targets)
    site.assert_survived(BATCH, before, *targets)
