"""A filesystem that refuses a deletion gives ``403 permission_denied``.

We run as root, which ignores permission bits, so the refusal comes from the immutable
attribute (``chattr +i``, ext4/xfs/btrfs/tmpfs): unlink in an immutable directory, or of
an immutable file, fails with EPERM for root too. Where ``chattr`` is missing or the
filesystem has no such attribute, the tests are skipped and say so.

Deletion is not atomic: within a directory target, entries removed before the refusal
stay removed (the atomic batch of issue 3 is what undoes a partial step). Nothing outside
the request's targets is touched.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.conftest import Site
from tests.support.endpoints import DeleteEndpoint
from tests.support.problems import assert_problem


@contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """``path`` with the immutable attribute set for the block."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: cannot make a file immutable as root")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_immutable_file_is_permission_denied(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("perm-file")
    (workspace / "locked.txt").write_text("cannot go")
    (workspace / "kept.txt").write_text("not a target")
    with immutable(workspace / "locked.txt"):
        before = site.snapshot_except()
        response = site.delete(endpoint, workspace.name, path="locked.txt")
        body = assert_problem(response, 403, "permission_denied")
        assert body["path"] == "locked.txt"
        site.assert_survived(endpoint, before)


def test_directory_with_immutable_part_is_permission_denied(
    site: Site, endpoint: DeleteEndpoint
) -> None:
    workspace = site.workspace("perm-dir")
    sealed = workspace / "tree" / "sealed"
    sealed.mkdir(parents=True)
    (sealed / "inner.txt").write_text("cannot go")
    (workspace / "tree" / "loose.txt").write_text("may go")
    (workspace / "kept.txt").write_text("not a target")
    with immutable(sealed):
        before = site.snapshot_except(workspace / "tree")
        response = site.delete(endpoint, workspace.name, path="tree")
        assert_problem(response, 403, "permission_denied")
        assert (sealed / "inner.txt").read_text() == "cannot go"
        site.assert_survived(endpoint, before, workspace / "tree")
