"""A real server over a fault site: a workspace root beside an ``outside`` directory.

Each fault test works in its own workspace (``<root>/<name>``, the request's
``workspace``) of one shared server, or on a root of its own when the fault is a property
of the whole filesystem (read-only, full). The server runs with at most 1024 open files,
the usual default limit, so that a fault cannot pass only because this machine is generous.

Every test ends with ``Site.assert_survived``: ``/healthz`` answers, a normal delete
succeeds, and nothing but the request's targets changed anywhere under the site.
"""

from __future__ import annotations

import errno
import itertools
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.endpoints import DELETE_ENDPOINTS, DeleteEndpoint
from tests.support.mounts import MountNotPermitted, tmpfs
from tests.support.server import serve
from tests.support.snapshot import Snapshot, changes, snapshot

OPEN_FILES_LIMIT = 1024


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
    _counter: list[int] = field(default_factory=lambda: [0])

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    def workspace(self, label: str) -> Path:
        """A fresh workspace directory ``<root>/<label>-<n>``; its name is ``path.name``."""
        self._counter[0] += 1
        path = self.root / f"{label}-{self._counter[0]}"
        path.mkdir()
        return path

    def snapshot_except(self, *targets: Path) -> Snapshot:
        """Everything under the site but ``targets`` (what a request may remove).

        The root is taken on its own as well: it may be a mount point, which a snapshot of
        ``base`` lists but does not enter.
        """
        in_root = snapshot(self.root, exclude=targets)
        return {
            **snapshot(self.base, exclude=targets),
            **{f"root:{k}": v for k, v in in_root.items()},
        }

    def delete(
        self, endpoint: DeleteEndpoint, workspace: str | None, **config: Any
    ) -> httpx.Response:
        return self.http.post(endpoint.url, json=endpoint.body(config, workspace))

    def assert_survived(self, endpoint: DeleteEndpoint, before: Snapshot, *targets: Path) -> None:
        """The service is up, still deletes, and only ``targets`` changed since ``before``."""
        assert not changes(before, self.snapshot_except(*targets))
        assert self.http.get("/healthz").status_code == 200
        self._counter[0] += 1
        name = f"after-fault-{self._counter[0]}.txt"
        (self.root / name).write_text("normal")
        response = self.delete(endpoint, None, path=name)
        assert response.status_code == 200, response.text
        assert endpoint.outcome(response.json())["deleted"] == [name]
        assert not (self.root / name).exists()


@contextmanager
def serve_site(base: Path, root: Path, log: Path) -> Iterator[Site]:
    """A server over ``root`` (inside ``base``), with the open-files limit applied."""
    with serve(root, log, preexec_fn=limit_open_files) as server, server.client() as http:
        yield Site(base, root, http)


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
    with serve_site(base, root, tmp_path_factory.mktemp("logs") / "server.log") as running:
        yield running


@pytest.fixture(params=DELETE_ENDPOINTS, ids=str)
def endpoint(request: pytest.FixtureRequest) -> DeleteEndpoint:
    """Each endpoint that runs delete steps, in turn."""
    endpoint: DeleteEndpoint = request.param
    return endpoint


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is the problem ``code`` with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def fill_up(directory: Path) -> None:
    """Use up every block and inode of the filesystem ``directory`` is on."""
    chunk = b"\0" * 65536
    with (directory / "filler").open("wb", buffering=0) as filler:
        for size in (65536, 4096, 1):
            try:
                while True:
                    filler.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    for index in itertools.count():
        try:
            (directory / f"inode-{index}").touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            break
    with pytest.raises(OSError, match="No space left"):
        (directory / "one-more").write_text("x")


@pytest.fixture
def full_disk_site(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server whose workspace root is a tiny tmpfs with no block or inode left.

    It holds ``target.txt`` and ``tree/a/b.txt`` (what tests may delete) and the
    ``filler`` that used the space up; ``.stepd``, where stepd keeps its own state, is on
    the full filesystem too.
    """
    root = make_site(tmp_path)
    try:
        with tmpfs(root, "size=256k,nr_inodes=64"):
            (root / "target.txt").write_text("delete me")
            (root / "tree" / "a").mkdir(parents=True)
            (root / "tree" / "a" / "b.txt").write_text("delete me too")
            fill_up(root)
            log = tmp_path_factory.mktemp("logs") / "server.log"
            with serve_site(tmp_path, root, log) as running:
                yield running
    except MountNotPermitted as refused:
        pytest.skip(f"mounting is not permitted here: {refused}")
