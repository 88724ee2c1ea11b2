"""Shared fixtures: a real workspace root in a temp dir, and the app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.sandbox import Root
from app.settings import Settings
from app.steps.workspace import RESERVED
from tests.support.server import serve


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
