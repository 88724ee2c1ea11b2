"""The application: ``create_app`` wires settings, the sandboxed root and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app import __version__
from app.api import problems
from app.api.idempotency import IdempotencyMiddleware
from app.api.routes import health, steps
from app.idempotency.sqlite import SQLiteStore
from app.sandbox import Root
from app.settings import Settings, check_workspace_root, state_dir
from app.steps.staging import Staging
from app.steps.workspace import RESERVED

IDEMPOTENCY_DB = "idempotency.sqlite3"
IDEMPOTENT_PATHS = ("/steps/delete", "/steps/batch")

DESCRIPTION = """\
Sandboxed, idempotent file steps for GitOps promotion pipelines (Kargo's `delete`, over
HTTP). A missing target is success; `strict: true` makes it a `404`. Every path stays
inside the workspace root. Errors are RFC 9457 `application/problem+json` with a stable
`code`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the workspace root is checked now and opened at start-up."""
    settings = settings or Settings()
    root_path = check_workspace_root(settings.workspace_root)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with Root.open(root_path, reserved=RESERVED) as root:
            staging = Staging(root)
            try:
                # Before serving: undo what a killed process left half done.
                with staging.lock(exclusive=True):
                    staging.recover()
                store = SQLiteStore(
                    state_dir(settings, root_path) / IDEMPOTENCY_DB, settings.idempotency_ttl
                )
                store.release_stale()
                app.state.root = root
                app.state.staging = staging
                app.state.idempotency = store
                try:
                    yield
                finally:
                    store.close()
            finally:
                staging.close()

    app = FastAPI(
        title="stepd",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)
    app.add_middleware(IdempotencyMiddleware, paths=IDEMPOTENT_PATHS)
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
            routes=app.routes,
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = problems.Problem.model_json_schema()
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
