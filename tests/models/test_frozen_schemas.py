"""Released versions never change: their models render exactly the committed schemas."""

from __future__ import annotations

import pytest

from app.api.spec import SPEC_DIR, VERSIONED_MODELS, version_schemas


@pytest.mark.parametrize("version", sorted(VERSIONED_MODELS))
def test_schemas_match_the_frozen_files(version: str) -> None:
    for name, text in version_schemas(version).items():
        assert (SPEC_DIR / name).read_text() == text, f"{name} changed: add a new version"
