"""The traversal corpus again, while stepd's own ``.stepd`` is missing, replaced or
hostile: missing, a symlink out of the root, a file, a directory of another user or
writable by all, moved out of the root, replaced by another directory. For every shape,
a sample of the corpus goes out as ``path`` to every endpoint, with and without an
Idempotency-Key, and as an atomic batch. No answer is a 5xx but the documented ``503
io_error`` of a request whose Idempotency-Key record cannot be kept; no answer names a
trash directory; nothing outside the root changes."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.api.problems import CATALOG, MEDIA_TYPE
from app.steps.workspace import RESERVED_NAME
from tests.fuzz.conftest import REQUESTS_SENT, Tree, make_tree, seed_workspace
from tests.support.corpus import read_corpus
from tests.support.endpoints import DELETE_ENDPOINTS
from tests.support.server import Server, serve
from tests.support.snapshot import changes, snapshot

# Every 8th entry without a mount: the shapes of stepd's area are what varies here.
CORPUS = read_corpus(Path(__file__).with_name("traversal_corpus.txt"))
SAMPLE = [entry for entry in CORPUS[::8] if not entry.needs_mount]
TRASH_ID = re.compile(r"[0-9a-f]{32}")


def _missing(area: Path, tree: Tree) -> None:
    shutil.rmtree(area, ignore_errors=True)


def _symlink_out(area: Path, tree: Tree) -> None:
    _missing(area, tree)
    area.symlink_to(tree.outside)


def _a_file(area: Path, tree: Tree) -> None:
    _missing(area, tree)
    area.write_text("in the way")


def _another_users(area: Path, tree: Tree) -> None:
    _missing(area, tree)
    area.mkdir(mode=0o700)
    os.chown(area, 4242, 4242)


def _writable_by_all(area: Path, tree: Tree) -> None:
    _missing(area, tree)
    area.mkdir()
    area.chmod(0o777)


def _moved_out(area: Path, tree: Tree) -> None:
    if area.is_dir() and not area.is_symlink():
        area.rename(tree.base / f"moved-{len(os.listdir(tree.base))}")


def _replaced(area: Path, tree: Tree) -> None:
    _missing(area, tree)
    area.mkdir(mode=0o700)


SHAPES: dict[str, Callable[[Path, Tree], None]] = {
    "missing": _missing,
    "symlink-out": _symlink_out,
    "file": _a_file,
    "another-users": _another_users,
    "writable-by-all": _writable_by_all,
    "moved-out": _moved_out,
    "replaced": _replaced,
}


@pytest.fixture(scope="module")
def area_tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return make_tree(tmp_path_factory.mktemp("area-shapes"))


@pytest.fixture(scope="module")
def http(area_tree: Tree) -> Iterator[httpx.Client]:
    server: Server
    with serve(area_tree.root) as server, server.client() as client:
        yield client


def _reset(area: Path) -> None:
    if area.is_symlink() or area.is_file():
        area.unlink()
    elif area.exists():
        shutil.rmtree(area)


@pytest.mark.parametrize("shape", SHAPES)
def test_corpus_with_a_replaced_or_missing_area(
    shape: str, area_tree: Tree, http: httpx.Client
) -> None:
    area = area_tree.root / RESERVED_NAME
    _reset(area)
    seed_workspace(area_tree, reserved=False)
    http.get("/readyz")  # a first use makes the area, so that there is one to move or replace
    SHAPES[shape](area, area_tree)
    before = snapshot(area_tree.base, exclude=(area_tree.root,))
    try:
        for entry in SAMPLE:
            text = entry.expand(outside=area_tree.outside, root=area_tree.root)
            bodies = [
                (endpoint.url, endpoint.body({"path": text}), key)
                for endpoint in DELETE_ENDPOINTS
                for key in (None, f"{shape}-{entry.line}-{endpoint.url}")
            ]
            atomic = {"atomic": True, "steps": [{"uses": "delete", "config": {"path": text}}]}
            bodies.append(("/steps/batch", atomic, None))
            for url, body, key in bodies:
                seed_workspace(area_tree, reserved=False)
                headers = {"Idempotency-Key": key} if key else {}
                response = http.post(url, json=body, headers=headers)
                REQUESTS_SENT[f"corpus sample with .stepd {shape}"] += 1
                context = f"{shape}: line {entry.line} {text[:60]!r} to {url} (key {key})"
                refused_record = key is not None and response.status_code == 503
                if refused_record:
                    assert response.json()["code"] == "io_error", context
                assert response.status_code < 500 or refused_record, (context, response.text)
                if response.status_code != 200:
                    assert response.headers["content-type"] == MEDIA_TYPE, context
                    assert response.json()["code"] in CATALOG, context
                assert not TRASH_ID.search(response.text), (context, response.text)
        assert http.get("/healthz").status_code == 200
    finally:
        _reset(area)
    assert not changes(before, snapshot(area_tree.base, exclude=(area_tree.root,)))
    assert http.get("/readyz").json()["status"] == "ready"
