"""One real stepd for the whole module: the client's tests use names of their own in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import serve


@pytest.fixture(scope="module")
def root_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace root; ``outside`` beside it is what must never change."""
    base = tmp_path_factory.mktemp("client")
    (base / "root").mkdir()
    (base / "outside").mkdir()
    (base / "outside" / "precious.txt").write_text("keep me")
    return base / "root"


@pytest.fixture(scope="module")
def live_server(root_dir: Path) -> Iterator[str]:
    """A real ``python -m app serve`` over ``root_dir``; yields its base URL."""
    with serve(root_dir) as server:
        yield server.base_url
