"""Shared fixtures: a real workspace root in a temp dir, the app over it, and a real
server over it (plain HTTP, or HTTPS with a certificate of a test CA)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from fastapi.testclient import TestClient

from app.main import create_app
from app.sandbox import Root
from app.settings import Settings
from app.steps.workspace import RESERVED
from tests.support.postgres import Postgres, running_postgres
from tests.support.server import Server, serve


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    """The workspace root; ``tmp_path/outside`` beside it is what must never change."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "precious.txt").write_text("keep me")
    return root


@pytest.fixture(params=[True, False], ids=["openat2", "walk"])
def root(request: pytest.FixtureRequest, root_dir: Path) -> Iterator[Root]:
    """The sandbox over ``root_dir``, once with openat2 and once with the fallback walk."""
    with Root.open(root_dir, reserved=RESERVED, use_openat2=request.param) as opened:
        yield opened


@pytest.fixture
def client(root_dir: Path) -> Iterator[TestClient]:
    """The application over ``root_dir``, in process."""
    app = create_app(Settings(workspace_root=root_dir))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def live_server(root_dir: Path) -> Iterator[str]:
    """A real ``python -m app serve`` over ``root_dir``; yields its base URL."""
    with serve(root_dir) as server:
        yield server.base_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server for the session (``tests/support/postgres.py``); tests
    take a database of their own on it (``Postgres.database``)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority of the tests' own, trusted by nothing else."""
    return trustme.CA()


@pytest.fixture(scope="module")
def https(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``stepd serve`` over HTTPS, with a certificate of ``ca`` for 127.0.0.1."""
    base = tmp_path_factory.mktemp("tls")
    (base / "root").mkdir()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    args = ["--tls-cert-file", str(base / "cert.pem"), "--tls-key-file", str(base / "key.pem")]
    with serve(base / "root", *args) as server:
        yield server
