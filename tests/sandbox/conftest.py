"""Fixtures of the sandbox tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def outside(root_dir: Path) -> Path:
    """The folder beside the root that no operation may touch."""
    return root_dir.parent / "outside"
