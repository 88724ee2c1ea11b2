"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import WorkspaceRoot
from app.api.problems import problem_response, problem_responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", operation_id="getHealth", summary="Liveness", response_model=Health)
def healthz() -> Health:
    """Always 200 while the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    summary="Readiness",
    response_model=Health,
    responses=problem_responses("not_ready"),
)
def readyz(root: WorkspaceRoot) -> Health | JSONResponse:
    """200 when the workspace root is still a directory we can write to, else 503."""
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
    return Health(status="ready")
