"""The committed ``openapi/openapi.json`` is what the application serves (`make openapi`)."""

from __future__ import annotations

from app.api.spec import SPEC_DIR, openapi_document, render


def test_committed_openapi_matches_the_app() -> None:
    committed = (SPEC_DIR / "openapi.json").read_text()
    assert committed == render(openapi_document()), "stale openapi.json: run `make openapi`"
