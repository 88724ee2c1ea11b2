"""The application: ``create_app`` wires settings, the sandboxed root and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from app import __version__
from app.api import problems
from app.api.routes import health, steps
from app.sandbox import Root
from app.settings import Settings, check_workspace_root
from app.steps.workspace import RESERVED

DESCRIPTION = """\
Sandboxed, idempotent file steps for GitOps promotion pipelines (Kargo's `delete`, over
HTTP). A missing target is success; `strict: true` makes it a `404`. Every path stays
inside the workspace root. Errors are RFC 9457 `application/problem+json` with a stable
`code`.
"""

DOCS_ASSETS_URL = "/docs/assets"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the workspace root is checked now and opened at start-up."""
    settings = settings or Settings()
    root_path = check_workspace_root(settings.workspace_root)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with Root.open(root_path, reserved=RESERVED) as root:
            app.state.root = root
            yield

    # Swagger UI at /docs from assets shipped in a Python package: no CDN. No ReDoc: its
    # page loads a logo from the internet.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS_URL,
        redoc_url=None,
        title="stepd",
        version=__version__,
        description=DESCRIPTION,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(steps.router)
    app.include_router(health.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the ``Problem`` schema every error response refers to."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            license_info=app.license_info,
            routes=app.routes,
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = problems.Problem.model_json_schema()
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        # No authentication unless an operation says otherwise.
        schema.setdefault("security", [])
        app.openapi_schema = schema
    return app.openapi_schema
