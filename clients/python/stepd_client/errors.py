"""What the client raises: one hierarchy, every error with the same four attributes.

::

    StepdError                 everything this client raises
    ├── StepdConnectionError   the transport failed on every attempt
    │   └── TLSError             the TLS handshake failed (never retried)
    ├── UnexpectedResponse     an answer that is neither the result nor a problem
    └── ProblemError           a problem+json answer: code, detail, problem
        ├── InvalidRequest       invalid_request, unsupported_media_type, payload_too_large,
        │                        request_timeout, headers_too_large,
        │                        invalid_idempotency_key, idempotency_key_reused,
        │                        invalid_step_request; or refused before sending
        ├── Unauthorized         unauthorized, kargo_token_rejected
        ├── Conflict             idempotency_key_in_flight (retried first)
        ├── InvalidPath          invalid_path, path_outside_workspace, invalid_glob,
        │                        glob_too_broad, symlink_loop, name_too_long,
        │                        path_too_long, too_many_segments
        ├── NotFound             not_found
        ├── FilesystemFailure    permission_denied, read_only_filesystem, busy, no_space,
        │                        too_many_open_files, io_error, atomic_unsupported,
        │                        cross_device
        ├── Unavailable          not_ready, overloaded, shutting_down, store_unavailable
        │                        (retried first)
        ├── UnsupportedOperation route_not_found, method_not_allowed, http_error
        └── InternalError        internal

Every error has ``status`` (the HTTP status, None when no answer came), ``request_id``
(the ``X-Request-ID`` of the call, the server's log line carries it; None when nothing
was sent), ``problem`` (the problem document, None when there is none) and ``response``
(the ``httpx.Response``, None when there is none). A code this client does not know
yet raises ``ProblemError`` itself.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from stepd_client.models import StepResult

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"


class StepdError(Exception):
    """Base of every error this client raises; see the module docstring."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        problem: dict[str, Any] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.problem = problem
        self.response = response


class StepdConnectionError(StepdError):
    """The request could not be sent or answered, on every attempt."""


class TLSError(StepdConnectionError):
    """The TLS handshake failed: a certificate not trusted (see ``verify=``), a name that
    does not match, a client certificate refused, or plain HTTP at the other end.
    Retrying cannot help, so it is raised at the first attempt."""


class UnexpectedResponse(StepdError):
    """An answer that is neither the expected result nor a problem+json body."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"unexpected {response.status_code} answer: {response.text[:200]}",
            status=response.status_code,
            request_id=response.headers.get(REQUEST_ID_HEADER),
            response=response,
        )
        self.body = response.text


class ProblemError(StepdError):
    """stepd answered with an RFC 9457 problem; ``problem`` is the whole body.

    A failed batch's problem also has its steps: ``steps``, ``failed_step`` and
    ``rolled_back`` read them (empty, None and None for other problems).
    """

    problem: dict[str, Any]

    def __init__(
        self,
        problem: dict[str, Any],
        *,
        status: int | None = None,
        request_id: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.code = str(problem.get("code", ""))
        self.detail = str(problem.get("detail", ""))
        super().__init__(
            f"{status or problem.get('status')} {self.code}: {self.detail}",
            status=status,
            request_id=request_id,
            problem=problem,
            response=response,
        )

    @property
    def steps(self) -> list[StepResult]:
        """Each step of a failed batch, as ``StepResult``; empty for other problems."""
        steps = self.problem.get("steps")
        if not isinstance(steps, list):
            return []
        try:
            return [StepResult.model_validate(step) for step in steps]
        except ValidationError:
            return []

    @property
    def failed_step(self) -> str | None:
        """The name of the step that failed a batch."""
        failed = self.problem.get("failedStep")
        return failed if isinstance(failed, str) else None

    @property
    def rolled_back(self) -> bool | None:
        """Whether a failed atomic batch was undone."""
        rolled_back = self.problem.get("rolledBack")
        return rolled_back if isinstance(rolled_back, bool) else None


class InvalidRequest(ProblemError):
    """The request does not fit the API; ``problem["errors"]`` names each field.

    Raised before sending, with ``status`` and ``request_id`` None, when the arguments
    cannot make a request at all (wrong types, no paths); the problem then has the shape
    of the server's ``invalid_request``.
    """


class Unauthorized(ProblemError):
    """No bearer token, or one the service does not accept."""


class InvalidPath(ProblemError):
    """A path or pattern that can never be used, or that leads outside the workspace."""


class NotFound(ProblemError):
    """Strict mode, and something matched nothing; ``problem["missing"]`` lists it."""


class Conflict(ProblemError):
    """Another request with the same Idempotency-Key is still running; retry later."""


class FilesystemFailure(ProblemError):
    """The filesystem refused or failed (permissions, read-only, busy, space, I/O)."""


class Unavailable(ProblemError):
    """The service is not ready, at capacity, shutting down, or cannot reach its
    idempotency store (retried, being 5xx)."""


class UnsupportedOperation(ProblemError):
    """The server has no such route or method (an older or newer stepd?)."""


class InternalError(ProblemError):
    """A bug in stepd; the server logged the details under the ``request_id``."""


FAMILIES: dict[str, type[ProblemError]] = {
    "invalid_request": InvalidRequest,
    "unsupported_media_type": InvalidRequest,
    "payload_too_large": InvalidRequest,
    "request_timeout": InvalidRequest,
    "headers_too_large": InvalidRequest,
    "unauthorized": Unauthorized,
    "kargo_token_rejected": Unauthorized,
    "invalid_step_request": InvalidRequest,
    "path_too_long": InvalidPath,
    "too_many_segments": InvalidPath,
    "invalid_path": InvalidPath,
    "path_outside_workspace": InvalidPath,
    "invalid_glob": InvalidPath,
    "glob_too_broad": InvalidPath,
    "symlink_loop": InvalidPath,
    "name_too_long": InvalidPath,
    "not_found": NotFound,
    "invalid_idempotency_key": InvalidRequest,
    "idempotency_key_reused": InvalidRequest,
    "idempotency_key_in_flight": Conflict,
    "atomic_unsupported": FilesystemFailure,
    "cross_device": FilesystemFailure,
    "permission_denied": FilesystemFailure,
    "read_only_filesystem": FilesystemFailure,
    "busy": FilesystemFailure,
    "no_space": FilesystemFailure,
    "too_many_open_files": FilesystemFailure,
    "io_error": FilesystemFailure,
    "not_ready": Unavailable,
    "overloaded": Unavailable,
    "shutting_down": Unavailable,
    "store_unavailable": Unavailable,
    "route_not_found": UnsupportedOperation,
    "method_not_allowed": UnsupportedOperation,
    "http_error": UnsupportedOperation,
    "internal": InternalError,
}


def problem_error(response: httpx.Response) -> StepdError:
    """The typed error for a non-2xx answer."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    problem: Any = None
    if media_type == PROBLEM_MEDIA_TYPE:
        try:
            problem = response.json()
        except ValueError:
            problem = None
    if not isinstance(problem, dict) or not isinstance(problem.get("code"), str):
        return UnexpectedResponse(response)
    return FAMILIES.get(problem["code"], ProblemError)(
        problem,
        status=response.status_code,
        request_id=response.headers.get(REQUEST_ID_HEADER),
        response=response,
    )


def invalid_arguments(exc: ValidationError) -> InvalidRequest:
    """The error for arguments that cannot make a request, in the server's problem shape."""
    errors = [{"field": _field(error["loc"]), "message": error["msg"]} for error in exc.errors()]
    detail = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
    problem = {
        "type": "urn:stepd:problem:invalid_request",
        "title": "The request body does not match the schema",
        "status": 422,
        "detail": detail,
        "code": "invalid_request",
        "errors": errors,
    }
    return InvalidRequest(problem)


def _field(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "body"
