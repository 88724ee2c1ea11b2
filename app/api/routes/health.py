"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import TrashPurger, WorkspaceRoot
from app.api.examples import ok_examples
from app.api.problems import problem_response, problem_responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class PurgeBacklog(BaseModel):
    """What the background purger has yet to free."""

    entries: int = Field(description="Detached entries (trees count as one) not yet freed.")
    bytes: int | None = Field(
        description="Their size in bytes; null when unknown (a directory is among them)."
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
    responses=ok_examples({"alive": {"summary": "The process serves", "value": {"status": "ok"}}}),
)
def healthz() -> Health:
    """The liveness probe."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    summary="Readiness",
    description="`200` when the workspace root is still a directory stepd can write to; "
    "`503 not_ready` when it was removed, or is read-only or not writable, so that "
    "traffic goes elsewhere until it is fixed. `purgeBacklog` tells what deleted entries "
    "the background purger has yet to free.",
    response_model=Readiness,
    response_model_by_alias=True,
    responses=ok_examples(
        {
            "ready": {
                "summary": "Ready to run steps",
                "value": {"status": "ready", "purgeBacklog": {"entries": 0, "bytes": 0}},
            }
        }
    )
    | problem_responses("not_ready"),
)
def readyz(root: WorkspaceRoot, purger: TrashPurger) -> Readiness | JSONResponse:
    """The readiness probe: checks the workspace root through its open descriptor."""
    try:
        st = os.fstat(root.fd)
        read_only = bool(os.fstatvfs(root.fd).f_flag & os.ST_RDONLY)
        writable = not read_only and os.access(f"/proc/self/fd/{root.fd}", os.W_OK)
    except OSError as exc:
        return problem_response("not_ready", f"workspace root unusable: {exc.strerror}")
    if st.st_nlink == 0:
        return problem_response("not_ready", "workspace root was removed")
    if not writable:
        return problem_response("not_ready", "workspace root is not writable")
    backlog = purger.backlog()
    return Readiness(
        status="ready",
        purgeBacklog=PurgeBacklog(entries=backlog.entries, bytes=backlog.bytes),
    )
