"""``POST /api/v1/step.execute``: Kargo's step plugin protocol, in front of the same steps.

stepd runs as a sidecar of a Promotion's agent pod (kargo-extended's ``StepPlugin``),
sharing the promotion's work dir. Each of stepd's step kinds is a plugin step kind named
with a prefix (``stepd-delete``). The answer is always HTTP 200 with the step's status,
as the protocol wants (any other status is a final error to the agent, except 503):

* ``Succeeded`` with ``output`` (a delete's ``deleted`` and ``absent``);
* ``Failed`` with ``message`` when a retry would fail the same way: a strict target
  missing, a path refused, a config that does not fit, an unknown kind;
* ``Errored`` with ``message`` when the environment failed (busy, no space, I/O), which
  Kargo retries within the step's error threshold; ``terminal`` as well for a bug;
* ``Running`` with ``retryAfter`` while the same step is still running for an earlier
  request (the agent gave up waiting for it and asked again).

A request with a ``promotionUID`` is recognised when repeated (the same UID, step alias
and config): a ``Succeeded`` or ``Failed`` answer is kept in the idempotency store and
given again, so a retry still reports what the first attempt deleted. ``Errored`` answers
are not kept: the retry runs the step again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from app.api.auth import KARGO_PATH, caller_of
from app.api.deps import (
    AppSettings,
    CurrentRequest,
    IdempotencyRecords,
    StepPool,
    TrashPurger,
    WorkspaceRoot,
)
from app.api.examples import ok_examples
from app.api.pool import Pool
from app.api.problems import problem_responses, validation_problem
from app.api.routes.steps import OPTIONAL_BEARER, observe
from app.idempotency.store import (
    ClaimOutcome,
    IdempotencyStore,
    StoredResponse,
    StoreUnavailable,
    fingerprint,
)
from app.models.kargo import StepExecuteRequest, StepExecuteResponse
from app.observability.record import RequestRecord
from app.sandbox import Root
from app.sandbox.errors import InvalidPath, OutsideRoot, SandboxError
from app.sandbox.glob import Budget
from app.sandbox.paths import join, split
from app.steps.batch import StepResult, StepStatus
from app.steps.errors import InvalidConfig, StepError
from app.steps.purger import Purger
from app.steps.registry import KINDS
from app.steps.single import outputs, parse_config, run_alone, summary
from app.steps.stop import Stop

log = logging.getLogger(__name__)

JSON = "application/json"
# How often a repeated request looks whether the first one has finished.
POLL_SECONDS = 0.1
# When Kargo asks again about a step still running for an earlier request.
RETRY_AFTER = "5s"
# The answers given again to a repeated request; the others are worth another try.
KEPT = frozenset({StepStatus.SUCCEEDED.value, StepStatus.FAILED.value})


class _StepPluginRoute(APIRoute):
    """A body that is not a ``step.execute`` request is 400 ``invalid_step_request``
    here, as the protocol's other servers answer it, rather than the API's 422."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except RequestValidationError as exc:
                return validation_problem(exc.errors(), code="invalid_step_request")
            return response

        return handle


router = APIRouter(tags=["kargo"], route_class=_StepPluginRoute)

REQUEST_EXAMPLES: dict[str, Any] = {
    "delete": {
        "summary": "Delete a directory of a checkout (what Kargo's agent sends)",
        "value": {
            "context": {
                "workDir": "/workspace",
                "project": "kargo-demo",
                "stage": "test",
                "promotion": "test.01j2m3n4p5q6r7s8t9v0w1x2y3.abc1234",
                "promotionUID": "6b1f6d2e-6a4c-4f0e-9a59-3c2d1e0f9a8b",
                "alias": "clean",
                "config": {"path": "out/charts/old-service"},
            },
            "step": {
                "kind": "stepd-delete",
                "alias": "clean",
                "config": {"path": "out/charts/old-service"},
            },
        },
    },
    "globs-strict": {
        "summary": "Delete glob matches; fail if a pattern matches nothing",
        "value": {
            "context": {"workDir": "/workspace", "promotionUID": "6b1f6d2e"},
            "step": {
                "kind": "stepd-delete",
                "alias": "prune",
                "config": {
                    "paths": ["out/*/values-dev.yaml"],
                    "pathsAreGlobs": True,
                    "strict": True,
                },
            },
        },
    },
}

RESPONSE_EXAMPLES: dict[str, Any] = {
    "succeeded": {
        "summary": "Done: what was deleted, what was already absent",
        "value": {
            "status": "Succeeded",
            "output": {"deleted": ["out/charts/old-service"], "absent": []},
        },
    },
    "failed": {
        "summary": "A strict target is missing (final)",
        "value": {
            "status": "Failed",
            "message": "not_found: strict mode: nothing matches 'out/x'; nothing was deleted",
        },
    },
    "refused": {
        "summary": "A path leading out of the work dir (final)",
        "value": {
            "status": "Failed",
            "message": "path_outside_workspace: config.path '../etc': "
            "path climbs out of the workspace",
        },
    },
    "errored": {
        "summary": "The filesystem is busy: Kargo retries within the error threshold",
        "value": {"status": "Errored", "message": "busy: cannot remove 'out': Device busy"},
    },
    "bug": {
        "summary": "A bug: no retry can help",
        "value": {
            "status": "Errored",
            "message": "internal: unexpected RuntimeError, logged by stepd",
            "terminal": True,
        },
    },
    "running": {
        "summary": "The same step still runs for an earlier request: ask again later",
        "value": {
            "status": "Running",
            "message": "this step is still running for an earlier request",
            "retryAfter": "5s",
        },
    },
}

DESCRIPTION = """\
Kargo's step plugin protocol (kargo-extended `StepPlugin`): stepd runs beside a
Promotion's agent and shares its work dir. `step.kind` is one of stepd's step kinds with
the prefix `STEPD_KARGO_KIND_PREFIX` (`stepd-delete`); `step.config` is that kind's v1
config (no `apiVersion`); `context.workDir` must be the workspace root or beneath it, and
the step runs there.

Every step outcome is HTTP `200`: `Succeeded` with `output`; `Failed` with `message`
(final: a strict target missing, a path refused, an invalid config, an unknown kind);
`Errored` with `message` (the environment failed: Kargo retries it; with `terminal` for a
bug); `Running` with `retryAfter` when the same step still runs for an earlier request.
A repeated request (same `context.promotionUID`, step alias and config) gets the first
`Succeeded` or `Failed` answer again.

With `STEPD_KARGO_TOKEN_FILE` set, the one bearer token accepted is that file's content
(`403 kargo_token_rejected` otherwise); without it, the route follows stepd's usual
authentication. A body that is not such a request is `400 invalid_step_request`.
"""


@router.post(
    KARGO_PATH,
    operation_id="executeKargoStep",
    summary="Run a step for a Kargo agent",
    description=DESCRIPTION,
    response_model=StepExecuteResponse,
    response_model_exclude_none=True,
    openapi_extra=OPTIONAL_BEARER,
    responses=ok_examples(RESPONSE_EXAMPLES)
    | problem_responses(
        "invalid_step_request",
        "unauthorized",
        "kargo_token_rejected",
        "request_timeout",
        "payload_too_large",
        "overloaded",
        "shutting_down",
        "internal",
    ),
)
async def execute_step(
    body: Annotated[StepExecuteRequest, Body(openapi_examples=REQUEST_EXAMPLES)],
    request: Request,
    root: WorkspaceRoot,
    purger: TrashPurger,
    settings: AppSettings,
    store: IdempotencyRecords,
    record: CurrentRequest,
    pool: StepPool,
) -> Response:
    """Run the step of ``body`` on the step pool; see the module doc."""
    step, context = body.step, body.context
    alias = step.alias or context.alias or "step"
    config = step.config if step.config is not None else context.config

    def run(stop: Stop) -> StepExecuteResponse:
        return _run(step.kind, config, context.workDir, alias, request, root, purger, record, stop)

    if not context.promotionUID:
        return _json(await pool.run(run))
    what = json.dumps([step.kind, config, context.workDir]).encode()
    digest = fingerprint("POST", KARGO_PATH, what)
    # The config is part of the key: a step whose config changed is another step.
    key = f"kargo:{context.promotionUID}:{alias}:{digest}"
    wait = settings.kargo_duplicate_wait
    return await _replayed(pool, store, caller_of(request), key, digest, run, wait)


def _run(
    kind_name: str,
    config: Any,
    work_dir: str | None,
    alias: str,
    request: Request,
    root: Root,
    purger: Purger,
    record: RequestRecord,
    stop: Stop,
) -> StepExecuteResponse:
    """Translate the request into one step run alone, and its result into an answer."""
    settings = request.app.state.settings
    prefix = settings.kargo_kind_prefix
    kind = KINDS.get(kind_name.removeprefix(prefix)) if kind_name.startswith(prefix) else None
    if kind is None:
        known = ", ".join(prefix + uses for uses in KINDS)
        return _failed(f"unknown_step: there is no step kind {kind_name!r} here; it has {known}")
    try:
        workspace = _workspace(work_dir, request.app.state.root_paths)
        parsed = parse_config(kind, config)
    except (SandboxError, InvalidConfig) as exc:
        return _failed(summary(exc))
    budget = Budget(settings.max_glob_entries)
    result = run_alone(root, purger, kind, parsed, workspace, alias, stop, budget)
    observe(record, workspace, [result])
    return answer_of(result)


def answer_of(result: StepResult) -> StepExecuteResponse:
    """The protocol's answer for a step's result: a bug (anything but a domain error) is
    ``Errored`` and ``terminal``, since running it again cannot help."""
    if result.error is None:
        return StepExecuteResponse(status="Succeeded", output=outputs(result.output))
    if result.status is StepStatus.FAILED:
        return _failed(summary(result.error))
    bug = not isinstance(result.error, SandboxError | StepError)
    return StepExecuteResponse(
        status="Errored", message=summary(result.error), terminal=True if bug else None
    )


def _workspace(work_dir: str | None, roots: tuple[PurePosixPath, ...]) -> str | None:
    """``context.workDir`` as a path beneath the root; None for the root itself.

    Only the spelling is checked here: the path is then opened one directory at a time
    beneath the root, where a symlink, a mount point or a reserved name is refused.
    """
    if not work_dir:
        return None
    if not work_dir.startswith("/"):
        raise InvalidPath("context.workDir must be an absolute path", path=work_dir)
    parts = tuple(part for part in work_dir.split("/") if part not in ("", "."))
    if ".." in parts:
        raise OutsideRoot("context.workDir must not climb with '..'", path=work_dir)
    for root in roots:
        depth = len(root.parts) - 1
        if parts[:depth] == root.parts[1:]:
            rest = parts[depth:]
            return join(split("/".join(rest))) if rest else None
    raise OutsideRoot("context.workDir is not the workspace root or beneath it", path=work_dir)


async def _replayed(
    pool: Pool,
    store: IdempotencyStore,
    caller: str,
    key: str,
    request_fingerprint: str,
    run: Callable[[Stop], StepExecuteResponse],
    wait: float,
) -> Response:
    """The kept answer to this step, or ``run``'s (kept if final).

    While the step still runs for an earlier request, wait up to ``wait`` seconds for its
    answer, then say ``Running``: any status but 200 would be a final error to Kargo.
    Waiting holds no thread: each look at the record is a short job of its own.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            claim = await pool.run(lambda _: store.claim(caller, key, request_fingerprint))
        except StoreUnavailable as exc:
            return _json(
                StepExecuteResponse(status="Errored", message=f"{exc.code}: {exc.message}")
            )
        if claim.outcome is ClaimOutcome.REPLAY:
            assert claim.response is not None
            return Response(claim.response.body, media_type=JSON)
        if claim.outcome is ClaimOutcome.NEW:
            return await pool.run(lambda stop: _run_claimed(store, caller, key, run, stop))
        if claim.outcome is ClaimOutcome.MISMATCH:  # the key holds the fingerprint
            message = "internal: this step's record belongs to another request"
            return _json(StepExecuteResponse(status="Errored", message=message))
        if time.monotonic() >= deadline:
            message = "this step is still running for an earlier request"
            answer = StepExecuteResponse(status="Running", message=message, retryAfter=RETRY_AFTER)
            return _json(answer)
        await asyncio.sleep(POLL_SECONDS)


def _run_claimed(
    store: IdempotencyStore,
    caller: str,
    key: str,
    run: Callable[[Stop], StepExecuteResponse],
    stop: Stop,
) -> Response:
    try:
        answer = run(stop)
    except BaseException:
        _settle(store.release, caller, key)
        raise
    response = _json(answer)
    if answer.status not in KEPT:
        _settle(store.release, caller, key)
    elif not _settle(store.complete, caller, key, StoredResponse(200, JSON, bytes(response.body))):
        # Without its record, a repeated request would wait for ever: let it run again.
        _settle(store.release, caller, key)
    return response


def _settle(action: Callable[..., None], *args: Any) -> bool:
    """Update the step's record; a failure can only be logged, the answer stands."""
    try:
        action(*args)
    except StoreUnavailable as exc:
        log.error("kargo step record not updated (%s): %s", action.__name__, exc.message)
        return False
    return True


def _failed(message: str) -> StepExecuteResponse:
    return StepExecuteResponse(status="Failed", message=message)


def _json(answer: StepExecuteResponse) -> Response:
    return Response(answer.model_dump_json(exclude_none=True), media_type=JSON)
