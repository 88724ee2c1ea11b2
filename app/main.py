"""The application: ``create_app`` wires settings, the sandboxed root and the routes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp

from app import __version__
from app.api import problems
from app.api.auth import Authenticator
from app.api.gate import Gate
from app.api.idempotency import IdempotencyMiddleware
from app.api.limits import BodyLimits
from app.api.pool import Pool
from app.api.protocol import Answer, bare_answer
from app.api.routes import docs, health, kargo, metrics, steps
from app.api.tokens import TokenFile, parse_agent_token
from app.idempotency.deferred import DeferredStore, Opened
from app.idempotency.lease import LeaseKeeper
from app.idempotency.postgres import PostgresStore
from app.idempotency.sqlite import SQLiteStore
from app.idempotency.store import StoreUnavailable, Sweep, new_owner
from app.idempotency.sweeper import Sweeper
from app.observability.metrics import Metrics
from app.observability.middleware import RequestObserver
from app.sandbox import Root
from app.sandbox.errors import SandboxError, from_os_error
from app.settings import (
    Settings,
    check_workspace_root,
    instance_id,
    postgres_url,
    sqlite_dir,
)
from app.steps.adoption import Adopter
from app.steps.area import StateArea, Unusable
from app.steps.purger import LOW_PRIORITY, Purger
from app.steps.staging import Staging
from app.steps.workspace import RESERVED

log = logging.getLogger(__name__)

IDEMPOTENT_PATHS = ("/steps/delete", "/steps/batch")
# Step threads yield the CPU to the event loop (probes, refusals) when cores are scarce.
STEP_NICENESS = 10
# Readiness probes come one at a time per kubelet: two threads, and a short queue.
PROBE_WORKERS = 2
PROBE_QUEUE = 16

DESCRIPTION = """\
Sandboxed, idempotent file steps for GitOps promotion pipelines (Kargo's `delete`, over
HTTP). A missing target is success; `strict: true` makes it a `404`. Every path stays
inside the workspace root. Errors are RFC 9457 `application/problem+json` with a stable
`code`.
"""


BEARER_AUTH = {
    "type": "http",
    "scheme": "bearer",
    "description": "Required when the service has a token file (`STEPD_AUTH_TOKENS_FILE`).",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the workspace root is checked now and opened at start-up.

    Raises ``ConfigError`` for a workspace root or token file that cannot serve.
    """
    settings = settings or Settings()
    root_path = check_workspace_root(settings.workspace_root)
    tokens = TokenFile(settings.auth_tokens_file) if settings.auth_tokens_file else None
    kargo_tokens = None
    if settings.kargo_token_file is not None:
        kargo_tokens = TokenFile(settings.kargo_token_file, parse_agent_token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        root = Root.open(root_path, reserved=RESERVED)
        instance = instance_id(settings)
        staging = Staging(root, instance=instance)
        adopter = Adopter(staging, settings.adopt_interval)
        purger = Purger(
            staging,
            background=settings.purge == "background",
            slice_seconds=settings.purge_slice,
            pause_seconds=settings.purge_pause,
            floor=settings.purge_floor,
            # With a floor, its share is CPU time taken on equal terms with step work.
            niceness=STEP_NICENESS if settings.purge_floor else LOW_PRIORITY,
            activity=app.state.metrics.activity,
        )
        owner = new_owner(instance)
        store = DeferredStore(
            lambda: _open_store(settings, staging.area, owner),
            serialised=postgres_url(settings) is None,
            observe=app.state.metrics.observe_store,
        )
        leases = LeaseKeeper(store, settings.idempotency_lease.total_seconds())
        sweeper = Sweeper(store, lambda swept: _report_sweep(app, swept))
        step_pool = Pool(
            "steps",
            workers=settings.step_workers,
            queue=settings.step_queue,
            niceness=STEP_NICENESS,
        )
        probe_pool = Pool("probes", workers=PROBE_WORKERS, queue=PROBE_QUEUE)
        app.state.root = root
        app.state.staging = staging
        app.state.idempotency = store
        app.state.purger = purger
        app.state.step_pool = step_pool
        app.state.probe_pool = probe_pool
        app.state.metrics.watch_purge_backlog(purger.backlog)
        app.state.metrics.watch_step_pool(lambda: step_pool.busy, lambda: step_pool.queued)
        try:
            # Started first: recovery hands it what a killed process left in the trash.
            purger.start()
            leases.start()
            sweeper.start()
            _prepare(staging, store)
            adopter.start()
            yield
        finally:
            adopted_ended = await to_thread.run_sync(adopter.stop)
            pools = (step_pool, probe_pool)
            ended = await _threads_ended(pools, purger, settings.shutdown_step_timeout)
            # Claims are renewed for as long as a request may still run.
            await to_thread.run_sync(leases.stop)
            await to_thread.run_sync(sweeper.stop)
            if ended and adopted_ended:
                store.close()
                staging.close()
                root.close()

    app = _App(
        docs_url=None,
        redoc_url=None,
        title="stepd",
        version=__version__,
        description=DESCRIPTION,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
        # Behind a proxy that strips a prefix, Swagger UI's "Try it out" must call it.
        servers=[{"url": settings.root_path}] if settings.root_path else None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    # How a Kargo agent may spell the root in a work dir: as configured, or resolved.
    app.state.root_paths = tuple(
        dict.fromkeys(
            PurePosixPath(p) for p in (settings.workspace_root.expanduser().absolute(), root_path)
        )
    )
    app.state.metrics = Metrics()
    problems.install(app)
    app.add_middleware(IdempotencyMiddleware, paths=IDEMPOTENT_PATHS)
    app.include_router(steps.router)
    app.include_router(kargo.router)
    app.include_router(health.router)
    docs.install(app)
    if settings.metrics:
        app.include_router(metrics.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.auth = Authenticator(tokens, settings.metrics_auth, kargo_tokens)
    app.limits = BodyLimits(settings.max_body_bytes, settings.body_timeout)
    return app


def _open_store(settings: Settings, area: StateArea, owner: str) -> Opened:
    """The PostgreSQL store of ``STEPD_IDEMPOTENCY_STORE``; or the SQLite store in the
    directory the operator gave (that URL's, or ``STEPD_STATE_DIR``), or by default in
    ``.stepd/state``, reached through the sandbox and checked at each use (``area.py``)."""
    if (url := postgres_url(settings)) is not None:
        postgres = PostgresStore(
            url,
            settings.idempotency_ttl,
            owner=owner,
            lease=settings.idempotency_lease,
            max_records=settings.idempotency_max_records,
            pool_size=settings.idempotency_pool_size,
            timeout=settings.idempotency_store_timeout,
        )
        return postgres, lambda: True
    try:
        if (given := sqlite_dir(settings) or settings.state_dir) is not None:
            directory = _open_state_dir(given)
            current: Callable[[], bool] = lambda: True  # noqa: E731
        else:
            directory, current = area.open_state()
    except Unusable as exc:
        raise StoreUnavailable("io_error", f"the idempotency store is unavailable: {exc}") from None
    except SandboxError as exc:
        code = exc.code if exc.code in ("no_space", "read_only_filesystem") else "io_error"
        message = f"the idempotency store is unavailable: {exc.message}"
        raise StoreUnavailable(code, message) from None
    store = SQLiteStore(
        directory,
        settings.idempotency_ttl,
        owner=owner,
        lease=settings.idempotency_lease,
        max_records=settings.idempotency_max_records,
    )
    return store, current


def _report_sweep(app: FastAPI, swept: Sweep) -> None:
    app.state.metrics.idempotency_swept(swept.expired, swept.evicted, swept.kept)


def _open_state_dir(path: Path) -> Root:
    """``STEPD_STATE_DIR``, made if missing: a place the operator chose, opened as given."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Root.open(path)
    except OSError as exc:
        raise from_os_error(exc, "", "open the state directory") from None


def _prepare(staging: Staging, store: DeferredStore) -> None:
    """Before serving: undo what a killed process left half done, and open the state.

    A root that is read-only or full must not keep the service from starting (deleting is
    how a full disk gets space back): what cannot be done now is logged in one line,
    ``/readyz`` says why, and the requests that need it try again until it works.
    """
    if missing := health.missing_state(staging, store):
        log.error("degraded start: %s; see /readyz, retried until it works", "; ".join(missing))


async def _threads_ended(pools: Sequence[Pool], purger: Purger, grace: float) -> bool:
    """Stop every thread that may use the root's, the staging area's or the store's
    descriptors (step work at a safe point, within ``grace`` seconds; the purger between
    two entries); whether they all ended. Only then may those descriptors be closed: one
    closed under a running thread could be reused by the next ``open`` and send that
    thread's work to another directory."""
    returned = await asyncio.gather(*(pool.close(grace) for pool in pools))
    purger_ended = await to_thread.run_sync(purger.stop)
    if all(returned) and purger_ended:
        return True
    log.error(
        "shutdown: a thread may still use the workspace root; its descriptors are left "
        "open for the kernel to close at exit"
    )
    return False


class _App(FastAPI):
    """FastAPI with the request observer outermost, outside even Starlette's handler of
    unexpected errors, so that every response (500s too) carries X-Request-ID and is
    counted and logged; then the gate (``app.api.gate``), in front of two stacks: with
    the added middleware (the Idempotency-Key layer) and without."""

    auth: Authenticator
    limits: BodyLimits

    def build_middleware_stack(self) -> ASGIApp:
        keyed = super().build_middleware_stack()
        added, self.user_middleware = self.user_middleware, []
        try:
            plain = super().build_middleware_stack()
        finally:
            self.user_middleware = added
        gate = Gate(plain, keyed, self.auth, self.limits)
        return RequestObserver(gate, self.state.metrics, self.router.routes)


def connection_answers(app: FastAPI) -> Answer:
    """How ``app``'s connections answer by themselves (``app.api.protocol``): through
    its request observer, so that those answers are logged and counted too."""

    def answer(code: str, detail: str) -> ASGIApp:
        return RequestObserver(bare_answer(code, detail), app.state.metrics, app.router.routes)

    return answer


REQUEST_ID_HEADER = {
    "description": "The caller's `X-Request-ID` when it is 1..128 visible ASCII characters, "
    "otherwise one stepd made; the request's log line carries it too.",
    "schema": {"type": "string", "maxLength": 128},
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the ``Problem`` schema every error response refers to
    and the ``X-Request-ID`` header every response carries."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            license_info=app.license_info,
            servers=app.servers,
            routes=app.routes,
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = problems.Problem.model_json_schema()
        schema["components"]["securitySchemes"] = {"bearerAuth": BEARER_AUTH}
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        # No authentication unless an operation says otherwise.
        schema.setdefault("security", [])
        schema["components"]["headers"] = {"X-Request-ID": REQUEST_ID_HEADER}
        for item in schema["paths"].values():
            for operation in item.values():
                # FastAPI's own 422 for a body that does not validate: stepd's routes
                # document theirs as problems (the step plugin route answers 400).
                if "HTTPValidationError" in json.dumps(operation["responses"].get("422")):
                    del operation["responses"]["422"]
                for response in operation["responses"].values():
                    response.setdefault("headers", {})["X-Request-ID"] = {
                        "$ref": "#/components/headers/X-Request-ID"
                    }
        app.openapi_schema = schema
    return app.openapi_schema
