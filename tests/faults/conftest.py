"""A real server over a fault site: a workspace root beside an ``outside`` directory.

Each fault test works in its own workspace (``<root>/<name>``, the request's
``workspace``) of one shared server, or on a root of its own when the fault is a property
of the whole filesystem (read-only, full). The server runs with at most 1024 open files,
the usual default limit, so that a fault cannot pass only because this machine is generous.

Every test ends with ``Site.assert_survived``: ``/healthz`` answers, a normal delete
succeeds, nothing but the request's targets changed anywhere under the site, and stepd's
own area ``<root>/.stepd`` (which it may create or update, and is left out of the
snapshots) holds no staged entry once the background purger is done.
"""

from __future__ import annotations

import errno
import itertools
import os
import resource
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.steps.workspace import RESERVED_NAME
from tests.support.endpoints import DELETE_ENDPOINTS, DeleteEndpoint
from tests.support.mounts import skip_if_not_permitted, tmpfs
from tests.support.server import Server, serve
from tests.support.snapshot import Snapshot, changes, snapshot
from tests.support.trash import trash_emptied

OPEN_FILES_LIMIT = 1024
# Files and directories stepd makes for its own state: .stepd, trash, lock, state, and
# the idempotency database with its two WAL files (some 60 KiB); a few more for good measure.
STATE_INODES = 12
SMALL_TMPFS = "size=512k,nr_inodes=64"


def limit_open_files() -> None:
    """In the server process: the soft limit most distributions and containers start with."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, hard))


@dataclass
class Site:
    """``base`` holds the workspace ``root`` and ``outside``; ``http`` talks to the server."""

    base: Path
    root: Path
    http: httpx.Client
    server: Server
    _counter: list[int] = field(default_factory=lambda: [0])

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    @property
    def private(self) -> Path:
        return self.root / RESERVED_NAME

    def staged(self) -> list[str]:
        """What the staging area holds once the background purger has freed what deletes
        detached into it (nothing, between requests)."""
        trash = self.private / "trash"
        if not trash.exists():
            return []
        trash_emptied(self.root)
        return sorted(os.listdir(trash))

    def workspace(self, label: str) -> Path:
        """A fresh workspace directory ``<root>/<label>-<n>``; its name is ``path.name``."""
        self._counter[0] += 1
        path = self.root / f"{label}-{self._counter[0]}"
        path.mkdir()
        return path

    def snapshot_except(self, *targets: Path) -> Snapshot:
        """Everything under the site but ``targets`` (what a request may remove).

        The root is taken on its own as well: it may be a mount point, which a snapshot of
        ``base`` lists but does not enter. stepd's own area is left out.
        """
        excluded = (*targets, self.private)
        in_root = snapshot(self.root, exclude=excluded)
        return {
            **snapshot(self.base, exclude=excluded),
            **{f"root:{k}": v for k, v in in_root.items()},
        }

    def delete(
        self, endpoint: DeleteEndpoint, workspace: str | None, **config: Any
    ) -> httpx.Response:
        return self.http.post(endpoint.url, json=endpoint.body(config, workspace))

    def assert_survived(self, endpoint: DeleteEndpoint, before: Snapshot, *targets: Path) -> None:
        """The service is up, still deletes, and only ``targets`` changed since ``before``."""
        assert not changes(before, self.snapshot_except(*targets))
        assert self.staged() == []
        assert self.http.get("/healthz").status_code == 200
        self._counter[0] += 1
        name = f"after-fault-{self._counter[0]}.txt"
        (self.root / name).write_text("normal")
        response = self.delete(endpoint, None, path=name)
        assert response.status_code == 200, response.text
        assert endpoint.outcome(response.json())["deleted"] == [name]
        assert not (self.root / name).exists()


@contextmanager
def serve_site(base: Path, root: Path) -> Iterator[Site]:
    """A server over ``root`` (inside ``base``), with the open-files limit applied."""
    with serve(root, preexec_fn=limit_open_files) as server, server.client() as http:
        yield Site(base, root, http, server)


def make_site(base: Path, root: Path | None = None) -> Path:
    """``base/outside`` with a file that must never change, and the root (made if absent)."""
    (base / "outside").mkdir()
    (base / "outside" / "precious.txt").write_text("keep me")
    root = root or base / "root"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The shared server; each test takes a workspace of its own with ``site.workspace``."""
    base = tmp_path_factory.mktemp("faults")
    root = make_site(base)
    with serve_site(base, root) as running:
        yield running


@pytest.fixture(params=DELETE_ENDPOINTS, ids=str)
def endpoint(request: pytest.FixtureRequest) -> DeleteEndpoint:
    """Each endpoint that runs delete steps, in turn."""
    endpoint: DeleteEndpoint = request.param
    return endpoint


def degraded_start_lines(site: Site) -> list[dict[str, Any]]:
    """The server's log records saying it started degraded."""
    return [r for r in site.server.lines if str(r.get("message")).startswith("degraded start")]


def fill_up(directory: Path, *, inodes: bool = True) -> None:
    """Use up every block (and, if ``inodes``, every inode) of ``directory``'s filesystem."""
    chunk = b"\0" * 65536
    with (directory / "filler").open("wb", buffering=0) as filler:
        for size in (65536, 4096, 1):
            try:
                while True:
                    filler.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    for index in itertools.count() if inodes else ():
        try:
            (directory / f"inode-{index}").touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            break
    with pytest.raises(OSError, match="No space left"):
        (directory / "one-more").write_text("x")


@contextmanager
def tmpfs_site(
    base: Path, set_up: Callable[[Path], None], options: str = "size=1m"
) -> Iterator[Site]:
    """A server over a root that is a tmpfs of its own (``options``), holding
    ``target.txt`` and ``tree/a/b.txt``; ``set_up`` finishes the root before the server
    starts. Skips the test where mounting is not permitted."""
    root = make_site(base)
    with skip_if_not_permitted(), tmpfs(root, options):
        (root / "target.txt").write_text("delete me")
        (root / "tree" / "a").mkdir(parents=True)
        (root / "tree" / "a" / "b.txt").write_text("delete me too")
        set_up(root)
        with serve_site(base, root) as running:
            yield running


def _fill_up_but_for_state(root: Path) -> None:
    (root / "tree" / "a" / "bulk").mkdir()
    for index in range(STATE_INODES):
        (root / "tree" / "a" / "bulk" / f"{index}.bin").write_bytes(b"\0" * 16384)
    fill_up(root)


@pytest.fixture
def full_disk_site(tmp_path: Path) -> Iterator[Site]:
    """A server whose workspace root is a tiny tmpfs with no block or inode left.

    It holds ``target.txt`` and ``tree/a/b.txt`` (what tests may delete; deleting
    ``tree`` also frees the inodes of ``tree/a/bulk``, so that there is room for stepd's
    own state, which it creates once it can, and for a new file) and the ``filler`` that
    used the space up; ``.stepd``, where stepd keeps its own state, is on the full
    filesystem too, and is missing: the server starts degraded.
    """
    with tmpfs_site(tmp_path, _fill_up_but_for_state, SMALL_TMPFS) as site:
        yield site


@pytest.fixture
def filling_site(tmp_path: Path) -> Iterator[Site]:
    """A server started over a small tmpfs with room to spare, holding ``target.txt`` and
    ``tree/a/b.txt``: stepd's own area is made at start-up; tests fill the disk after."""
    with tmpfs_site(tmp_path, lambda root: None, SMALL_TMPFS) as site:
        yield site
