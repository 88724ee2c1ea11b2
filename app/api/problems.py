"""RFC 9457 problem details: the one place that maps errors to HTTP.

Every error response is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and a stable snake_case ``code``; ``CATALOG`` lists every code with its status.
RFC 9457 is a five-member JSON shape; a small model here keeps the domain's exception
hierarchy free of any web framework, which the problem-details libraries would not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.pool import Overloaded
from app.models.delete import SUPPORTED_VERSIONS
from app.observability.record import note_problem
from app.sandbox.errors import SandboxError
from app.steps.errors import StepError, Stopped, TargetNotFound
from app.steps.registry import KINDS

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:stepd:problem:"
INTERNAL_DETAIL = "an internal error occurred; it has been logged"


@dataclass(frozen=True)
class ProblemKind:
    """A problem code's status and title; ``retry_after``: seconds a client should wait
    before trying again, sent as ``Retry-After`` (None: no such header)."""

    status: int
    title: str
    retry_after: int | None = None


CATALOG: dict[str, ProblemKind] = {
    "invalid_request": ProblemKind(422, "The request body does not match the schema"),
    "invalid_path": ProblemKind(422, "The path can never name an entry in the workspace"),
    "path_too_long": ProblemKind(422, "A path or pattern is longer than allowed"),
    "too_many_segments": ProblemKind(422, "A path or pattern has more segments than allowed"),
    "path_outside_workspace": ProblemKind(422, "The path leads outside the workspace"),
    "invalid_glob": ProblemKind(422, "The glob pattern cannot be parsed"),
    "glob_too_broad": ProblemKind(422, "The glob patterns would visit too many entries"),
    "symlink_loop": ProblemKind(422, "Too many levels of symbolic links"),
    "name_too_long": ProblemKind(422, "A path component is too long"),
    "not_found": ProblemKind(404, "A strict target does not exist"),
    "permission_denied": ProblemKind(403, "The filesystem denied permission"),
    "read_only_filesystem": ProblemKind(409, "The workspace is on a read-only filesystem"),
    "busy": ProblemKind(409, "The target is busy or kept changing"),
    "no_space": ProblemKind(507, "No space left on the device"),
    "too_many_open_files": ProblemKind(503, "The service ran out of file descriptors"),
    "io_error": ProblemKind(503, "The filesystem reported an I/O error"),
    "cross_device": ProblemKind(409, "A rename would cross filesystems"),
    "atomic_unsupported": ProblemKind(409, "An atomic batch cannot run on this filesystem"),
    "invalid_idempotency_key": ProblemKind(400, "The Idempotency-Key header is malformed"),
    "idempotency_key_reused": ProblemKind(422, "The Idempotency-Key was used for another request"),
    "idempotency_key_in_flight": ProblemKind(409, "A request with this Idempotency-Key is running"),
    "store_unavailable": ProblemKind(503, "The idempotency store cannot be reached", retry_after=1),
    "not_ready": ProblemKind(503, "The service is not ready"),
    "unauthorized": ProblemKind(401, "A valid bearer token is required"),
    "kargo_token_rejected": ProblemKind(403, "The bearer token is not the Kargo agent's"),
    "invalid_step_request": ProblemKind(400, "The body is not a Kargo step.execute request"),
    "request_timeout": ProblemKind(408, "The request did not arrive in time"),
    "headers_too_large": ProblemKind(431, "The request line and headers are larger than allowed"),
    "payload_too_large": ProblemKind(413, "The request body is larger than allowed"),
    "unsupported_media_type": ProblemKind(415, "The request body must be JSON"),
    "route_not_found": ProblemKind(404, "No such route"),
    "method_not_allowed": ProblemKind(405, "Method not allowed on this route"),
    "http_error": ProblemKind(400, "The request cannot be served"),
    "overloaded": ProblemKind(503, "The service is at capacity", retry_after=1),
    "shutting_down": ProblemKind(503, "The service is shutting down", retry_after=1),
    "internal": ProblemKind(500, "Internal error"),
}


class Problem(BaseModel):
    """An RFC 9457 problem details object, with a stable ``code``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:stepd:problem:not_found",
                    "title": "A strict target does not exist",
                    "status": 404,
                    "detail": "strict mode: nothing matches 'out'; nothing was deleted",
                    "code": "not_found",
                }
            ]
        },
    )

    type: str = Field(description="URI naming the problem kind: `urn:stepd:problem:<code>`.")
    title: str = Field(description="Short summary of the problem kind.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request.")
    code: str = Field(
        description="Stable snake_case identifier; the list is in docs/API.md (Errors)."
    )


def problem_response(
    code: str, detail: str, *, status: int | None = None, **extensions: Any
) -> JSONResponse:
    """A problem+json response for ``code`` (one of ``CATALOG``)."""
    kind = CATALOG[code]
    note_problem(code)
    body = {
        "type": TYPE_PREFIX + code,
        "title": kind.title,
        "status": status or kind.status,
        "detail": detail,
        "code": code,
        **extensions,
    }
    headers = None if kind.retry_after is None else {"Retry-After": str(kind.retry_after)}
    return JSONResponse(body, status_code=body["status"], media_type=MEDIA_TYPE, headers=headers)


def closing_problem(code: str, detail: str) -> JSONResponse:
    """``problem_response`` with ``Connection: close``: for a request whose connection
    must not serve another one (its body was not read, or the server is stopping)."""
    response = problem_response(code, detail)
    response.headers["connection"] = "close"
    return response


# What a problem of each code looks like, for the API description: ``detail`` and the
# extension members. A code missing here is shown with its title as the detail.
EXAMPLES: dict[str, dict[str, Any]] = {
    "invalid_request": {
        "detail": "path: Input should be a valid string",
        "errors": [{"field": "path", "message": "Input should be a valid string"}],
    },
    "invalid_path": {
        "detail": "path must be relative to the workspace, not absolute",
        "path": "/etc/passwd",
    },
    "path_outside_workspace": {"detail": "path climbs out of the workspace", "path": "../x"},
    "invalid_glob": {"detail": "pattern 'a[' has an unclosed '['", "path": "a["},
    "glob_too_broad": {
        "detail": "the glob patterns visit more than the 1000000 entries a request may; "
        "narrow them (nothing was deleted)"
    },
    "not_found": {
        "detail": "strict mode: nothing matches 'out'; nothing was deleted",
        "missing": ["out"],
    },
    "permission_denied": {
        "detail": "cannot delete 'b/locked.txt': Operation not permitted",
        "path": "b/locked.txt",
        "deleted": ["a"],
    },
    "not_ready": {"detail": "workspace root is not writable"},
    "invalid_step_request": {
        "detail": "step: Field required",
        "errors": [{"field": "step", "message": "Field required"}],
    },
    "overloaded": {"detail": "stepd is at capacity (steps): retry shortly"},
    "shutting_down": {
        "detail": "the service is shutting down: stopped after deleting 1 entry",
        "deleted": ["out"],
        "partly": [],
    },
    "internal": {"detail": "an internal error occurred; it has been logged"},
}


def problem_example(code: str) -> dict[str, Any]:
    """An example problem+json body of ``code`` (one of ``CATALOG``)."""
    kind = CATALOG[code]
    return {
        "type": TYPE_PREFIX + code,
        "title": kind.title,
        "status": kind.status,
        "detail": kind.title,
        "code": code,
        **EXAMPLES.get(code, {}),
    }


def problem_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``codes`` (grouped by status) as problems."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(CATALOG[code].status, []).append(code)
    return {status: _grouped_response(grouped) for status, grouped in sorted(by_status.items())}


def _grouped_response(codes: list[str]) -> dict[str, Any]:
    """One OpenAPI response documenting problems of ``codes`` (all of one status)."""
    response: dict[str, Any] = {
        "description": "Problem: " + ", ".join(f"`{c}`" for c in codes),
        "content": {
            MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "examples": {
                    code: {"summary": CATALOG[code].title, "value": problem_example(code)}
                    for code in codes
                },
            }
        },
    }
    if waits := [code for code in codes if CATALOG[code].retry_after is not None]:
        listed = ", ".join(f"`{code}`" for code in waits)
        response["headers"] = {
            "Retry-After": {
                "description": f"Seconds to wait before trying again; sent with {listed}.",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


def domain_problem(exc: SandboxError | StepError, **extensions: Any) -> JSONResponse:
    """The problem for a domain error, with ``extensions`` added."""
    if isinstance(exc, SandboxError) and exc.path:
        extensions["path"] = exc.path
    if isinstance(exc, TargetNotFound):
        extensions["missing"] = exc.missing
    if isinstance(exc, Stopped):
        extensions["deleted"] = exc.deleted
        extensions["partly"] = exc.partly
    return problem_response(exc.code, exc.message, **extensions)


def failure_problem(exc: Exception, **extensions: Any) -> JSONResponse:
    """The problem for whatever a step raised: a domain error, or a bug (``internal``)."""
    if isinstance(exc, SandboxError | StepError):
        return domain_problem(exc, **extensions)
    return problem_response("internal", INTERNAL_DETAIL, **extensions)


def error_code(exc: Exception) -> str:
    """The problem ``code`` an exception a step raised answers with."""
    return exc.code if isinstance(exc, SandboxError | StepError) else "internal"


def error_detail(exc: Exception) -> str:
    """The problem ``detail`` an exception a step raised answers with."""
    return exc.message if isinstance(exc, SandboxError | StepError) else INTERNAL_DETAIL


def _field(loc: Sequence[int | str]) -> str:
    # Drop "body" and the apiVersion tag pydantic puts in front of a union member's fields.
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    if parts and parts[0] in SUPPORTED_VERSIONS:
        parts = parts[1:]
    if parts and parts[0] == "steps":
        return _step_field(parts)
    return ".".join(str(p) for p in parts) or "body"


def _step_field(parts: list[int | str]) -> str:
    """A batch field as ``steps[3].config.paths[1]``, without the ``uses`` tag after the
    step's index that pydantic puts in front of the fields of a union member."""
    if len(parts) > 2 and isinstance(parts[1], int) and parts[2] in KINDS:
        del parts[2]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _error_field(error: Any) -> str:
    # A JSON syntax error's location ends with a character offset, not a field name.
    if error.get("type") == "json_invalid":
        return "body"
    return _field(error.get("loc", ()))


def _bad_workspace_name(error: Any) -> bool:
    return bool(
        _field(error.get("loc", ())) == "workspace"
        and error.get("type") == "string_pattern_mismatch"
    )


def validation_problem(errors: Sequence[Any], *, code: str | None = None) -> JSONResponse:
    """The problem naming each field that failed and why.

    ``code`` when given; otherwise ``invalid_request``, except that a well-typed workspace
    name that is not one valid segment is ``invalid_path``, like every other name that can
    never be in the root.
    """
    items = [{"field": _error_field(e), "message": e.get("msg", "")} for e in errors]
    detail = "; ".join(f"{item['field']}: {item['message']}" for item in items)
    if code is None:
        bad_name = errors and all(map(_bad_workspace_name, errors))
        code = "invalid_path" if bad_name else "invalid_request"
    return problem_response(code, detail or "invalid request", errors=items)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SandboxError | StepError)
        return domain_problem(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc.errors())

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "route_not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        response = problem_response(code, str(exc.detail), status=exc.status_code)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def on_overloaded(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Overloaded)
        return problem_response("overloaded", exc.message)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response("internal", INTERNAL_DETAIL)

    app.add_exception_handler(SandboxError, on_domain_error)
    app.add_exception_handler(StepError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Overloaded, on_overloaded)
    app.add_exception_handler(Exception, on_unexpected)
