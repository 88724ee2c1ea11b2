"""stepd's own area replaced or missing under a running server.

``.stepd`` removed (the whole of it, or only its trash), moved out of the root, or replaced
by a symlink to ``outside`` or by a directory of another user: a directory delete still
answers ``200`` every time (the area made anew, or the delete done in place), no answer
names a trash directory, nothing outside the root changes, and once the shape is gone
the server is ``ready`` again without a restart.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import Site
from tests.support.endpoints import DeleteEndpoint

TRASH_ID = re.compile(r"[0-9a-f]{32}")


def _removed(site: Site) -> None:
    shutil.rmtree(site.private)


def _trash_removed(site: Site) -> None:
    shutil.rmtree(site.private / "trash")


def _moved_out(site: Site) -> None:
    site.private.rename(site.base / f"moved-area-{len(os.listdir(site.base))}")


def _symlink_out(site: Site) -> None:
    shutil.rmtree(site.private)
    site.private.symlink_to(site.outside)


def _another_users(site: Site) -> None:
    shutil.rmtree(site.private)
    site.private.mkdir(mode=0o700)
    os.chown(site.private, 4242, 4242)


SHAPES: dict[str, Callable[[Site], None]] = {
    "removed": _removed,
    "trash-removed": _trash_removed,
    "moved-out": _moved_out,
    "symlink-out": _symlink_out,
    "another-users": _another_users,
}


def _restore(private: Path) -> None:
    if private.is_symlink():
        private.unlink()
    elif private.stat().st_uid != os.geteuid():
        shutil.rmtree(private)


@pytest.mark.parametrize("shape", SHAPES)
def test_directory_deletes_survive_a_replaced_or_missing_area(
    site: Site, endpoint: DeleteEndpoint, shape: str
) -> None:
    workspace = site.workspace(f"area-{shape}")
    for name in ("first", "second"):
        (workspace / name / "sub").mkdir(parents=True)
        (workspace / name / "sub" / "f.txt").write_text(name)
    assert site.http.get("/readyz").status_code == 200  # the area exists
    site.staged()  # and the purger is done with it
    SHAPES[shape](site)
    before = site.snapshot_except(workspace / "first", workspace / "second")
    try:
        for name in ("first", "second"):
            response = site.delete(endpoint, workspace.name, path=name)
            assert response.status_code == 200, response.text
            assert endpoint.outcome(response.json())["deleted"] == [name]
            assert not TRASH_ID.search(response.text)
            assert not (workspace / name).exists()
    finally:
        _restore(site.private)
    site.assert_survived(endpoint, before, workspace / "first", workspace / "second")
    ready = site.http.get("/readyz").json()
    assert ready["status"] == "ready", ready
