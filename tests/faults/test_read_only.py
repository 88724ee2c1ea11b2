"""A read-only workspace filesystem gives ``409 read_only_filesystem``, and recovers.

The root is a tmpfs remounted read-only before the server starts: it starts anyway,
degraded (one log line, no traceback). Every delete that would change something is
refused with 409 and nothing changes, as is a request with an Idempotency-Key (its
record cannot be written); ``/readyz`` says 503 ``not_ready`` while ``/healthz`` stays
200. Remounted read-write, the same server works fully again without a restart. An
atomic batch a killed process left half done keeps every step from running until it can
be rolled back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.sandbox import Root
from app.steps.staging import Staging
from app.steps.workspace import RESERVED
from tests.faults.conftest import (
    Site,
    degraded_start_lines,
    tmpfs_site,
)
from tests.support.endpoints import DeleteEndpoint
from tests.support.mounts import remount
from tests.support.problems import assert_problem
from tests.support.trash import NO_BACKLOG


@pytest.fixture
def read_only_site(tmp_path: Path) -> Iterator[Site]:
    with tmpfs_site(tmp_path, _read_only) as site:
        yield site


def _read_only(root: Path) -> None:
    remount(root, "ro")


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


def test_start_on_a_read_only_root_is_degraded_not_failed(
    read_only_site: Site, endpoint: DeleteEndpoint
) -> None:
    site = read_only_site
    [line] = degraded_start_lines(site)
    assert "read_only_filesystem" in line["message"]
    assert "Traceback" not in site.server.output()
    ready = assert_problem(site.http.get("/readyz"), 503, "not_ready")
    assert "read-only" in ready["detail"]
    keyed = site.http.post(
        endpoint.url, json=endpoint.body({"path": "absent"}), headers={"Idempotency-Key": "ro"}
    )
    assert_problem(keyed, 409, "read_only_filesystem")
    remount(site.root, "rw")
    assert site.http.get("/readyz").json() == {
        "status": "ready",
        "purgeBacklog": NO_BACKLOG,
    }
    first = site.http.post(
        endpoint.url, json=endpoint.body({"path": "target.txt"}), headers={"Idempotency-Key": "rw"}
    )
    again = site.http.post(
        endpoint.url, json=endpoint.body({"path": "target.txt"}), headers={"Idempotency-Key": "rw"}
    )
    assert first.status_code == again.status_code == 200, first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert not (site.root / "target.txt").exists()


@pytest.fixture
def interrupted_site(tmp_path: Path) -> Iterator[Site]:
    """A read-only root on which a killed atomic batch left ``target.txt`` staged."""
    with tmpfs_site(tmp_path, _interrupted) as site:
        yield site


def _interrupted(root: Path) -> None:
    with Root.open(root, reserved=RESERVED) as opened:
        staging = Staging(opened)
        entry = opened.lookup("target.txt")
        assert entry is not None
        staging.begin().stage(opened, None, [entry], [])
        staging.close()
    remount(root, "ro")


def test_no_step_runs_before_an_interrupted_batch_is_rolled_back(
    interrupted_site: Site, endpoint: DeleteEndpoint
) -> None:
    """``target.txt`` is absent only because the batch that staged it never finished:
    answering "absent" (200) would be a lie that its rollback then undoes."""
    site = interrupted_site
    assert not (site.root / "target.txt").exists()
    ready = assert_problem(site.http.get("/readyz"), 503, "not_ready")
    assert "interrupted atomic batch" in ready["detail"]
    assert_problem(site.delete(endpoint, None, path="target.txt"), 409, "read_only_filesystem")
    # Read-only: nothing can leave the staging area, so no waiting for the purger.
    assert len(os.listdir(site.private / "trash")) == 1
    remount(site.root, "rw")
    response = site.delete(endpoint, None, path="target.txt", strict=True)
    assert response.status_code == 200, response.text
    assert endpoint.outcome(response.json())["deleted"] == ["target.txt"]
    assert site.staged() == []
    site.assert_survived(endpoint, site.snapshot_except())
