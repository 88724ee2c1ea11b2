"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its work).

Neither waits behind step work: liveness is answered on the event loop (it touches
nothing), readiness on a pool of threads of its own (it looks at the filesystem, and may
retry what a degraded start could not do).

Readiness is ``503 not_ready`` when no step can succeed: the root is gone, read-only or
not writable, or an atomic batch a killed process left is not recovered yet. A root whose
filesystem is full stays ready, ``degraded``: deletes still work there, and they are how
space comes back, so traffic must keep reaching the service. The probe also retries what
a degraded start could not do, so the service recovers without a restart.
"""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import (
    IdempotencyRecords,
    ProbePool,
    RootStaging,
    TrashPurger,
    WorkspaceRoot,
)
from app.api.examples import ok_examples
from app.api.problems import problem_response, problem_responses
from app.idempotency.deferred import DeferredStore
from app.sandbox import Root
from app.sandbox.errors import SandboxError
from app.steps.area import Unusable
from app.steps.purger import Purger
from app.steps.staging import Staging

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="`ok` (liveness); `ready` or `degraded` (readiness).")
    detail: str | None = Field(None, description="What is degraded, and what that affects.")


class PurgeBacklog(BaseModel):
    """What the background purger has yet to free, and what it freed so far."""

    entries: int = Field(description="Detached entries (trees count as one) not yet freed.")
    bytes: int | None = Field(
        description="Their size in bytes; null when unknown (a directory is among them)."
    )
    stuck: int = Field(
        0,
        description="Of `entries`, those in trash directories the purger tried and failed to "
        "free (an immutable file, a mount point inside): tried again with backoff.",
    )
    oldest_seconds: float = Field(
        0.0,
        alias="oldestSeconds",
        description="How long the oldest of `entries` has been waiting to be freed, in "
        "seconds; 0 when there is none.",
    )
    files: int | None = Field(
        0,
        description="Files, links and directories in `entries`; null when unknown (a "
        "directory is among them).",
    )
    freed_entries: int = Field(
        0, alias="freedEntries", description="Entries freed since the service started."
    )
    freed_files: int = Field(
        0,
        alias="freedFiles",
        description="Files, links and directories removed since the service started, "
        "counted as they go: it moves during a long purge.",
    )
    freed_bytes: int = Field(
        0,
        alias="freedBytes",
        description="Bytes freed since the service started, of the entries whose size was "
        "known (deleted without a directory among them).",
    )
    files_per_second: float = Field(
        0.0,
        alias="filesPerSecond",
        description="Files, links and directories removed per second over about the last "
        "10 seconds.",
    )


class Readiness(Health):
    purge_backlog: PurgeBacklog = Field(alias="purgeBacklog")


@router.get(
    "/healthz",
    operation_id="getHealth",
    summary="Liveness",
    description="Always `200` while the process serves requests; it touches nothing else, "
    "so a failing liveness probe means the process is stuck or gone.",
    response_model=Health,
    response_model_exclude_none=True,
    responses=ok_examples({"alive": {"summary": "The process serves", "value": {"status": "ok"}}}),
)
async def healthz() -> Health:
    """The liveness probe, answered on the event loop."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    summary="Readiness",
    description="`200 ready` when the workspace root is a directory stepd can write to; "
    "`200 degraded` (with `detail`) when it works but not fully: the filesystem is full "
    "(deletes still work), the staging area or the idempotency store cannot be opened or "
    "reached, or "
    "`.stepd` is refused (atomic batches, or requests with an Idempotency-Key, answer that "
    "problem), or the purger cannot free some of the trash (it tries again). "
    "`503 not_ready` when the root was removed, is read-only or not writable, or an "
    "interrupted atomic batch cannot be recovered yet, so that traffic goes elsewhere "
    "until it is fixed. Each call retries what a degraded start could not do. "
    "`purgeBacklog` tells what deleted entries the background purger has yet to free, how "
    "many of them it failed to free so far (`stuck`), how long the oldest has waited, what "
    "it freed since the service started (`freed*`) and how fast it frees now.",
    response_model=Readiness,
    responses=ok_examples(
        {
            "ready": {
                "summary": "Ready to run steps",
                "value": {
                    "status": "ready",
                    "purgeBacklog": {
                        "entries": 0,
                        "bytes": 0,
                        "stuck": 0,
                        "oldestSeconds": 0,
                        "files": 0,
                        "freedEntries": 12,
                        "freedFiles": 48210,
                        "freedBytes": 4096,
                        "filesPerSecond": 0,
                    },
                },
            },
            "degraded": {
                "summary": "Full filesystem: deletes work, other work may not",
                "value": {
                    "status": "degraded",
                    "detail": "the workspace filesystem is full; deletes still work",
                    "purgeBacklog": {
                        "entries": 2,
                        "bytes": 2097152,
                        "stuck": 0,
                        "oldestSeconds": 0.25,
                        "files": 2,
                        "freedEntries": 3,
                        "freedFiles": 215000,
                        "freedBytes": 0,
                        "filesPerSecond": 5130.2,
                    },
                },
            },
        }
    )
    | problem_responses("not_ready", "overloaded", "shutting_down"),
)
async def readyz(
    root: WorkspaceRoot,
    staging: RootStaging,
    store: IdempotencyRecords,
    purger: TrashPurger,
    pool: ProbePool,
) -> JSONResponse:
    """The readiness probe, on the probe pool."""
    return await pool.run(lambda _: readiness(root, staging, store, purger))


def readiness(root: Root, staging: Staging, store: DeferredStore, purger: Purger) -> JSONResponse:
    """The readiness answer: checks the workspace root through its open descriptor."""
    try:
        st = os.fstat(root.fd)
        vfs = os.fstatvfs(root.fd)
        read_only = bool(vfs.f_flag & os.ST_RDONLY)
        writable = not read_only and os.access(f"/proc/self/fd/{root.fd}", os.W_OK)
    except OSError as exc:
        return problem_response("not_ready", f"workspace root unusable: {exc.strerror}")
    if st.st_nlink == 0:
        return problem_response("not_ready", "workspace root was removed")
    reasons = []
    if read_only:
        reasons.append("workspace root is on a read-only filesystem")
    elif not writable:
        reasons.append("workspace root is not writable")
    try:
        staging.ready()
    except SandboxError as exc:
        reasons.append(f"an interrupted atomic batch cannot be rolled back yet: {exc.message}")
    if reasons:
        return problem_response("not_ready", "; ".join(reasons))
    degraded = _degraded(vfs, staging, store)
    backlog = purger.backlog()
    if backlog.stuck:
        degraded.append(
            f"the purger cannot free {backlog.stuck} trash entries (see the log); it tries again"
        )
    readiness = Readiness(
        status="degraded" if degraded else "ready",
        detail="; ".join(degraded) or None,
        purgeBacklog=PurgeBacklog(
            entries=backlog.entries,
            bytes=backlog.bytes,
            stuck=backlog.stuck,
            oldestSeconds=round(backlog.oldest_seconds, 3),
            files=backlog.files,
            freedEntries=backlog.freed.entries,
            freedFiles=backlog.freed.files,
            freedBytes=backlog.freed.bytes,
            filesPerSecond=round(backlog.files_per_second, 1),
        ),
    )
    # Serialised here: ``detail`` only when degraded, but ``bytes`` even when null.
    body = readiness.model_dump(
        mode="json", by_alias=True, exclude={"detail"} if not degraded else None
    )
    return JSONResponse(body)


def _degraded(vfs: os.statvfs_result, staging: Staging, store: DeferredStore) -> list[str]:
    """What works only in part, each with what it affects."""
    reasons = []
    if vfs.f_bavail == 0 or (vfs.f_files and vfs.f_favail == 0):
        reasons.append("the workspace filesystem is full; deletes still work")
    return reasons + missing_state(staging, store)


def missing_state(staging: Staging, store: DeferredStore) -> list[str]:
    """Make the staging area and open the idempotency store if they are not yet; what
    cannot be made, with its problem code and what it affects."""
    missing = []
    try:
        staging.prepare()
    except Unusable as exc:
        missing.append(
            f"stepd's own area is refused: {exc}; atomic batches unavailable, "
            "deletes happen in place"
        )
    except SandboxError as exc:
        missing.append(f"atomic batches unavailable ({exc.code}): {exc.message}")
    if (unavailable := store.unavailable()) is not None:
        missing.append(
            f"requests with an Idempotency-Key unavailable ({unavailable.code}): "
            f"{unavailable.message}"
        )
    return missing
