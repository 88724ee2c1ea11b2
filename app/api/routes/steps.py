"""``/steps/*``: run steps against the sandboxed workspace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel

from app.api.deps import StepRoute, StepServices
from app.api.examples import ok_examples
from app.api.problems import (
    error_code,
    error_detail,
    failure_problem,
    problem_responses,
    validation_problem,
)
from app.models import internal
from app.models.batch import (
    BatchRequest,
    BatchResult,
    BatchStepResult,
    StepFailure,
    batch_result,
    default_alias,
)
from app.models.delete import DeleteRequest, DeleteResult, delete_result
from app.observability.record import RequestRecord
from app.sandbox.errors import SandboxError
from app.sandbox.glob import Budget
from app.steps.batch import BatchResult as BatchRun
from app.steps.batch import StepResult, run_batch
from app.steps.delete import DeleteOutcome
from app.steps.errors import Stopped, TargetNotFound
from app.steps.registry import DELETE
from app.steps.single import outputs

router = APIRouter(prefix="/steps", tags=["steps"])

DELETE_EXAMPLES: dict[str, Any] = {
    "v1-path": {
        "summary": "v1: delete one path (absent is fine)",
        "value": {"apiVersion": "v1", "path": "out"},
    },
    "v1-globs-strict": {
        "summary": "v1: strict glob delete; 404 until each pattern matches a file",
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

DELETE_DESCRIPTION = """\
Runs one Kargo `delete` step in the workspace `<root>/<workspace>` (or the root itself).

* A missing target is **success** (listed in `absent`); with `strict: true` it is
  `404 not_found` and nothing is deleted.
* Directories go with everything in them; a symlink is removed as a link, never followed.
* Every entry is resolved before anything is deleted.
* Nothing outside the workspace is ever touched: absolute paths, `..` climbing out,
  symlinks leading out and mount points are refused with `422`.
* A failure while deleting (say `403 permission_denied` for an immutable file) carries
  `deleted`: what was deleted before it.
"""


# Documented here, acted on by the gate and the Idempotency-Key layer before the route:
# not a parameter of the route, which FastAPI would parse on every request.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the first request with a key runs and its answer is "
    "kept (24 h by default); the same key with the same body answers it again, with "
    "`Idempotent-Replayed: true`. A quoted string or a token, 1..255 visible ASCII.",
    "schema": {"type": "string"},
}

BATCH_EXAMPLES: dict[str, Any] = {
    "atomic": {
        "summary": "Atomic: clean two directories, all or nothing",
        "value": {
            "apiVersion": "v1",
            "workspace": "promo-42",
            "atomic": True,
            "steps": [
                {"uses": "delete", "as": "clean-out", "config": {"path": "out"}},
                {"uses": "delete", "config": {"paths": ["tmp/**"], "pathsAreGlobs": True}},
            ],
        },
    },
    "continue-on-error": {
        "summary": "Not atomic; a failing step that may fail",
        "value": {
            "steps": [
                {
                    "uses": "delete",
                    "config": {"path": "maybe", "strict": True},
                    "continueOnError": True,
                },
                {"uses": "delete", "config": {"path": "out"}},
            ]
        },
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

BATCH_RESULT_EXAMPLES: dict[str, Any] = {
    "succeeded": {
        "summary": "every step succeeded",
        "value": {
            "apiVersion": "v1",
            "kind": "BatchResult",
            "status": "Succeeded",
            "rolledBack": False,
            "steps": [
                {
                    "as": "clean-out",
                    "uses": "delete",
                    "status": "Succeeded",
                    "deleted": ["out"],
                    "absent": [],
                }
            ],
        },
    },
}

# The problems both step endpoints can answer with.
STEP_PROBLEMS = (
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
    "glob_too_broad",
    "symlink_loop",
    "name_too_long",
    "not_found",
    "permission_denied",
    "read_only_filesystem",
    "busy",
    "invalid_idempotency_key",
    "idempotency_key_in_flight",
    "idempotency_key_reused",
    "no_space",
    "too_many_open_files",
    "io_error",
    "overloaded",
    "shutting_down",
    "internal",
)
# Every operation may run with or without a bearer token, as the service is configured.
OPTIONAL_BEARER: dict[str, Any] = {"security": [{"bearerAuth": []}, {}]}
STEP_OPERATION = OPTIONAL_BEARER | {"parameters": [IDEMPOTENCY_KEY_PARAMETER]}

BATCH_DESCRIPTION = """\
Runs Kargo-shaped steps in order in one workspace. The whole batch is validated before
any step runs (an invalid step is `422`, naming it: `steps[3].config.path`). Step
statuses: `Succeeded`, `Failed` (the request or workspace is wrong), `Errored` (the
environment failed: busy, no space, I/O) and `Skipped` (after the step that stopped the
batch). A failing step with `continueOnError: true` does not stop the batch.

With `atomic: true`, targets are moved aside into a hidden staging area and purged only
when every step succeeded; if the batch fails, every step that ran is undone and the
workspace is exactly as before. A failed batch answers the failing step's status and
`code` as `application/problem+json` with `steps`, `failedStep` and `rolledBack`.
"""


@router.post(
    "/delete",
    operation_id="runDeleteStep",
    summary="Run a delete step",
    description=DELETE_DESCRIPTION,
    response_model=DeleteResult,
    openapi_extra=STEP_OPERATION,
    responses=ok_examples(DELETE_RESULT_EXAMPLES) | problem_responses(*STEP_PROBLEMS),
)
async def run_delete_step(
    request: Annotated[DeleteRequest, Body(openapi_examples=DELETE_EXAMPLES)],
    services: StepRoute,
) -> Response:
    """Run one delete step: a batch of one, on the step pool (blocking filesystem work)."""
    spec = request.to_internal()
    step = internal.BatchStep(alias=default_alias(0), uses=DELETE.uses, config=spec.config)
    batch = internal.BatchRequest(spec.api_version, spec.workspace, atomic=False, steps=(step,))
    result = await _run(services, batch)
    observe(services.record, spec.workspace, result.steps)
    failed = result.failed
    if failed is not None:
        assert failed.error is not None
        if isinstance(failed.output, DeleteOutcome):
            # It failed while deleting: say what was deleted before the failure.
            return failure_problem(failed.error, deleted=failed.output.deleted)
        return failure_problem(failed.error)
    outcome: DeleteOutcome = result.steps[0].output
    return _json(delete_result(spec.api_version, outcome.deleted, outcome.absent))


@router.post(
    "/batch",
    operation_id="runBatch",
    summary="Run a batch of steps",
    description=BATCH_DESCRIPTION,
    response_model=BatchResult,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    openapi_extra=STEP_OPERATION,
    responses=ok_examples(BATCH_RESULT_EXAMPLES)
    | problem_responses(*STEP_PROBLEMS, "atomic_unsupported"),
)
async def run_batch_steps(
    request: Annotated[BatchRequest, Body(openapi_examples=BATCH_EXAMPLES)],
    services: StepRoute,
) -> Response:
    """Run a batch on the step pool; see the description."""
    spec = request.to_internal()
    limit = services.settings.max_batch_steps
    if len(spec.steps) > limit:
        message = f"at most {limit} steps, got {len(spec.steps)}"
        return validation_problem([{"loc": ("body", "steps"), "msg": message}])
    result = await _run(services, spec)
    observe(services.record, spec.workspace, result.steps)
    steps = [_step_result(step) for step in result.steps]
    if result.failed is None:
        return _json(batch_result(spec.api_version, steps), exclude_none=True)
    assert result.failed.error is not None
    return failure_problem(
        result.failed.error,
        steps=[step.model_dump(mode="json", by_alias=True, exclude_none=True) for step in steps],
        failedStep=result.failed.alias,
        rolledBack=result.rolled_back,
    )


async def _run(services: StepServices, batch: internal.BatchRequest) -> BatchRun:
    """Run ``batch`` on the step pool, its glob walks within the configured budget."""
    budget = Budget(services.settings.max_glob_entries)
    root, purger = services.root, services.purger
    return await services.pool.run(lambda stop: run_batch(root, purger, batch, stop, budget))


def _json(result: BaseModel, *, exclude_none: bool = False) -> Response:
    """A 200 response of ``result``, serialised once: the model was built from our own
    values, so letting FastAPI validate it again against ``response_model`` is waste."""
    body = result.model_dump_json(by_alias=True, exclude_none=exclude_none)
    return Response(body, media_type="application/json")


def _step_result(result: StepResult) -> BatchStepResult:
    """The response form of one step's result."""
    fields = outputs(result.output)
    if isinstance(result.error, Stopped):
        fields = {"deleted": result.error.deleted}
    error = None
    if result.error is not None:
        error = StepFailure(code=error_code(result.error), detail=error_detail(result.error))
    return BatchStepResult(
        alias=result.alias,
        uses=result.uses,
        status=result.status,
        error=error,
        **fields,
    )


def observe(record: RequestRecord, workspace: str | None, steps: list[StepResult]) -> None:
    """Tell the request's record (its log line and metrics) the fate of every entry."""
    for step in steps:
        record.start_step(step.uses, workspace)
        if isinstance(step.output, DeleteOutcome):
            for path in step.output.deleted:
                record.deleted(path)
            for entry in step.output.absent:
                record.absent(entry)
        error = step.error
        if isinstance(error, Stopped):
            for path in error.deleted:
                record.deleted(path)
        if isinstance(error, TargetNotFound):
            for entry in error.missing:
                record.failed(entry, error.code)
        elif error is not None:
            path = error.path if isinstance(error, SandboxError) else ""
            record.failed(path or None, error_code(error))
