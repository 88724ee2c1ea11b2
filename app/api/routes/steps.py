"""``/steps/*``: run steps against the sandboxed workspace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.api.deps import CurrentRequest, WorkspaceRoot
from app.api.examples import ok_examples
from app.api.problems import problem_responses
from app.models.delete import DeleteRequest, DeleteResult, delete_result
from app.steps.delete import run_delete
from app.steps.workspace import open_workspace

router = APIRouter(prefix="/steps", tags=["steps"])

DELETE_EXAMPLES: dict[str, Any] = {
    "v1-path": {
        "summary": "v1: delete one path (absent is fine)",
        "value": {"apiVersion": "v1", "path": "out"},
    },
    "v1-globs-strict": {
        "summary": "v1: delete glob matches, failing if a pattern matches nothing",
        "value": {
            "apiVersion": "v1",
            "workspace": "promo-42",
            "paths": ["charts/*/values-dev.yaml", "tmp/**"],
            "pathsAreGlobs": True,
            "strict": True,
        },
    },
    "v1alpha1": {
        "summary": "v1alpha1 (Kargo <= 1.10): one path",
        "value": {"apiVersion": "v1alpha1", "path": "out/manifests.yaml", "strict": False},
    },
}

DELETE_RESULT_EXAMPLES: dict[str, Any] = {
    "v1": {
        "summary": "v1: one entry deleted, one absent",
        "value": {
            "apiVersion": "v1",
            "kind": "DeleteResult",
            "status": "Succeeded",
            "deleted": ["charts/web/values-dev.yaml"],
            "absent": ["tmp/**"],
        },
    },
    "v1alpha1": {
        "summary": "v1alpha1: the answer keeps the request's version",
        "value": {
            "apiVersion": "v1alpha1",
            "kind": "DeleteResult",
            "status": "Succeeded",
            "deleted": ["out/manifests.yaml"],
            "absent": [],
        },
    },
}

DELETE_DESCRIPTION = """\
Runs one Kargo `delete` step in the workspace `<root>/<workspace>` (or the root itself).

* A missing target is **success** (listed in `absent`); with `strict: true` it is
  `404 not_found` and nothing is deleted.
* Directories go with everything in them; a symlink is removed as a link, never followed.
* Every entry is resolved before anything is deleted.
* Nothing outside the workspace is ever touched: absolute paths, `..` climbing out,
  symlinks leading out and mount points are refused with `422`.
"""


@router.post(
    "/delete",
    operation_id="runDeleteStep",
    summary="Run a delete step",
    description=DELETE_DESCRIPTION,
    response_model=DeleteResult,
    openapi_extra={"security": [{"bearerAuth": []}, {}]},
    responses=ok_examples(DELETE_RESULT_EXAMPLES)
    | problem_responses(
        "http_error",
        "unauthorized",
        "request_timeout",
        "payload_too_large",
        "unsupported_media_type",
        "invalid_request",
        "invalid_path",
        "path_too_long",
        "too_many_segments",
        "path_outside_workspace",
        "invalid_glob",
        "symlink_loop",
        "name_too_long",
        "not_found",
        "permission_denied",
        "read_only_filesystem",
        "busy",
        "no_space",
        "too_many_open_files",
        "io_error",
        "internal",
    ),
)
def run_delete_step(
    request: Annotated[DeleteRequest, Body(openapi_examples=DELETE_EXAMPLES)],
    root: WorkspaceRoot,
    record: CurrentRequest,
) -> DeleteResult:
    """Run one delete step; blocking filesystem work, so FastAPI runs it in a thread."""
    spec = request.to_internal()
    record.start_step("delete", spec.workspace)
    with open_workspace(root, spec.workspace) as workspace:
        outcome = run_delete(workspace, spec.config, observer=record)
    return delete_result(spec.api_version, outcome.deleted, outcome.absent)
