"""A filesystem that refuses a deletion gives ``403 permission_denied``.

We run as root, which ignores permission bits, so the refusal comes from the immutable
attribute (``chattr +i``, ext4/xfs/btrfs/tmpfs): unlink in an immutable directory, or of
an immutable file, fails with EPERM for root too. Where ``chattr`` is missing or the
filesystem has no such attribute, the tests are skipped and say so.

A directory target is detached (renamed into the trash) before the answer, so only what
is deleted in place (files, symlinks) can be refused this way; a directory with an
immutable part is gone from the workspace and what the purger cannot free stays in the
trash until it can. Nothing outside the request's targets is touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.faults.conftest import Site
from tests.support.endpoints import DeleteEndpoint
from tests.support.immutable import immutable, set_immutable
from tests.support.problems import assert_problem
from tests.support.trash import trash_emptied


def test_immutable_file_is_permission_denied(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("perm-file")
    (workspace / "locked.txt").write_text("cannot go")
    (workspace / "kept.txt").write_text("not a target")
    with immutable(workspace / "locked.txt"):
        before = site.snapshot_except()
        response = site.delete(endpoint, workspace.name, path="locked.txt")
        body = assert_problem(response, 403, "permission_denied")
        assert body["path"] == "locked.txt"
        assert endpoint.outcome(body)["deleted"] == []  # nothing went before it
        site.assert_survived(endpoint, before)


def test_directory_with_immutable_part_is_detached_and_left_in_the_trash(
    site: Site, endpoint: DeleteEndpoint
) -> None:
    """A directory is detached (renamed into the trash) before the answer, so an immutable
    part inside it cannot make the request fail: the workspace no longer holds the target,
    and the part the purger cannot free stays in the trash, where the operator sees it
    (logged, and counted stuck in the purge backlog) and the purger tries it again.
    ``STEPD_PURGE=inline`` answers 403 instead."""
    workspace = site.workspace("perm-dir")
    sealed = workspace / "tree" / "sealed"
    sealed.mkdir(parents=True)
    (sealed / "inner.txt").write_text("cannot go")
    (workspace / "tree" / "loose.txt").write_text("may go")
    (workspace / "kept.txt").write_text("not a target")
    trash = site.private / "trash"
    with immutable(sealed):
        response = site.delete(endpoint, workspace.name, path="tree")
        assert response.status_code == 200, response.text
        assert not (workspace / "tree").exists()
        assert (workspace / "kept.txt").read_text() == "not a target"
        [left] = [path for path in trash.rglob("sealed") if path.is_dir()]
        assert (left / "inner.txt").read_text() == "cannot go"
        assert _stuck(site) == 1
        # Once the cause is gone the purger's next try frees it, without a restart.
        set_immutable(left, False)
    assert trash_emptied(site.root)
    # The directory goes a moment before the purger counts the entry done.
    assert _stuck(site, until=lambda stuck: stuck == 0) == 0


def _stuck(site: Site, until: Callable[[int], bool] = bool, timeout: float = 60) -> int:
    """The purger's stuck entries once ``until`` holds for them (by default: once its first
    try failed); the timeout is a bound, never a measure."""
    deadline = time.monotonic() + timeout
    while not until(stuck := int(site.http.get("/readyz").json()["purgeBacklog"]["stuck"])):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return stuck
