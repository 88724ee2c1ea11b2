"""FIFOs, sockets and device nodes in the tree are deleted as names, never opened.

Opening a FIFO with no writer blocks; the sandbox only ever ``lstat``s and ``unlink``s
non-directories, and opens directories with ``O_DIRECTORY | O_NONBLOCK``, so none of
these can hold a request (the client's timeout would fail the test if one did).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.faults.conftest import Site
from tests.support.endpoints import DeleteEndpoint


def make_special_files(directory: Path) -> list[str]:
    """A FIFO, a socket and a character device (like /dev/null) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    os.mkfifo(directory / "fifo")
    os.mknod(directory / "socket", stat.S_IFSOCK | 0o600)
    os.mknod(directory / "null-device", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    return ["fifo", "null-device", "socket"]


def test_each_special_file_is_deleted_by_path(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("special")
    names = make_special_files(workspace)
    (workspace / "kept.txt").write_text("not a target")
    targets = [workspace / name for name in names]
    before = site.snapshot_except(*targets)
    response = site.delete(endpoint, workspace.name, paths=names)
    assert response.status_code == 200, response.text
    assert endpoint.outcome(response.json())["deleted"] == names
    assert sorted(os.listdir(workspace)) == ["kept.txt"]
    site.assert_survived(endpoint, before, *targets)


def test_directory_holding_special_files_is_deleted(site: Site, endpoint: DeleteEndpoint) -> None:
    workspace = site.workspace("special-dir")
    make_special_files(workspace / "out" / "nested")
    make_special_files(workspace / "out")
    before = site.snapshot_except(workspace / "out")
    response = site.delete(endpoint, workspace.name, path="out")
    assert response.status_code == 200, response.text
    assert not (workspace / "out").exists()
    site.assert_survived(endpoint, before, workspace / "out")


def test_globs_match_special_files_without_opening_them(
    site: Site, endpoint: DeleteEndpoint
) -> None:
    workspace = site.workspace("special-glob")
    make_special_files(workspace / "a" / "b")
    (workspace / "a" / "b" / "kept.txt").write_text("not matched")
    targets = [workspace / "a" / "b" / name for name in ("fifo", "socket")]
    before = site.snapshot_except(*targets)
    response = site.delete(
        endpoint, workspace.name, paths=["**/fifo", "**/sock*"], pathsAreGlobs=True
    )
    assert response.status_code == 200, response.text
    assert endpoint.outcome(response.json())["deleted"] == ["a/b/fifo", "a/b/socket"]
    site.assert_survived(endpoint, before, *targets)
