"""A typed Python client for stepd: ``StepdClient`` (sync) and ``AsyncStepdClient``.

Each call is one logical operation: it carries an ``Idempotency-Key`` (a uuid4, or the
caller's) that stays the same on every retry, so the server can recognise a repeat. A
transport error, a 5xx answer, or a 409 ``idempotency_key_in_flight`` (an earlier attempt
whose answer was lost is still running) is retried with capped, fully jittered exponential
backoff (``RetryPolicy``); anything else is final. Results are the API's models (``app.models``);
errors are typed from the problem+json body::

    StepdError                 everything this client raises
    ├── StepdConnectionError   the transport failed on every attempt
    ├── UnexpectedResponse     an answer that is neither the result nor a problem
    └── ProblemError           a problem+json answer: code, status, detail, problem
        ├── InvalidRequest       invalid_request, unsupported_media_type, payload_too_large,
        │                        request_timeout, headers_too_large,
        │                        invalid_idempotency_key, idempotency_key_reused
        ├── Unauthorized         unauthorized
        ├── Conflict             idempotency_key_in_flight (retried first)
        ├── InvalidPath          invalid_path, path_outside_workspace, invalid_glob,
        │                        symlink_loop, name_too_long, path_too_long,
        │                        too_many_segments
        ├── NotFound             not_found
        ├── FilesystemFailure    permission_denied, read_only_filesystem, busy, no_space,
        │                        too_many_open_files, io_error, atomic_unsupported,
        │                        cross_device
        ├── Unavailable          not_ready, overloaded, shutting_down (retried first)
        ├── UnsupportedOperation route_not_found, method_not_allowed, http_error
        └── InternalError        internal

A code this client does not know yet raises ``ProblemError`` itself.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from app.models.batch import BatchResultV1
from app.models.v1 import DeleteRequestV1, DeleteResultV1

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
IDEMPOTENCY_HEADER = "Idempotency-Key"

Result = TypeVar("Result", bound=BaseModel)


class StepdError(Exception):
    """Base of every error this client raises."""


class StepdConnectionError(StepdError):
    """The request could not be sent or answered, on every attempt."""


class UnexpectedResponse(StepdError):
    """An answer that is neither the expected result nor a problem+json body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"unexpected {status} answer: {body[:200]}")
        self.status = status
        self.body = body


class ProblemError(StepdError):
    """stepd answered with an RFC 9457 problem; ``problem`` is the whole body."""

    def __init__(self, problem: dict[str, Any]) -> None:
        self.problem = problem
        self.code: str = str(problem.get("code", ""))
        self.status: int = int(problem.get("status", 0))
        self.detail: str = str(problem.get("detail", ""))
        super().__init__(f"{self.status} {self.code}: {self.detail}")


class InvalidRequest(ProblemError):
    """The body did not fit the model; ``problem["errors"]`` names each field."""


class Unauthorized(ProblemError):
    """No bearer token, or one the service does not accept."""


class InvalidPath(ProblemError):
    """A path or pattern that can never be used, or that leads outside the workspace."""


class NotFound(ProblemError):
    """Strict mode, and something matched nothing; ``problem["missing"]`` lists it."""


IN_FLIGHT_STATUS = 409
IN_FLIGHT_CODE = "idempotency_key_in_flight"


class Conflict(ProblemError):
    """Another request with the same Idempotency-Key is still running; retry later."""


class FilesystemFailure(ProblemError):
    """The filesystem refused or failed (permissions, read-only, busy, space, I/O)."""


class Unavailable(ProblemError):
    """The service is not ready, at capacity, or shutting down (retried, being 5xx)."""


class UnsupportedOperation(ProblemError):
    """The server has no such route or method (an older or newer stepd?)."""


class InternalError(ProblemError):
    """A bug in stepd; the server logged the details."""


FAMILIES: dict[str, type[ProblemError]] = {
    "invalid_request": InvalidRequest,
    "unsupported_media_type": InvalidRequest,
    "payload_too_large": InvalidRequest,
    "request_timeout": InvalidRequest,
    "headers_too_large": InvalidRequest,
    "unauthorized": Unauthorized,
    "path_too_long": InvalidPath,
    "too_many_segments": InvalidPath,
    "invalid_path": InvalidPath,
    "path_outside_workspace": InvalidPath,
    "invalid_glob": InvalidPath,
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
    "route_not_found": UnsupportedOperation,
    "method_not_allowed": UnsupportedOperation,
    "http_error": UnsupportedOperation,
    "internal": InternalError,
}


class BatchStep(BaseModel):
    """One step of a batch: ``uses`` names the step, ``config`` is its configuration."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    uses: str
    as_: str | None = Field(None, alias="as", description="Name of the step in the result.")
    config: dict[str, Any] = Field(default_factory=dict)
    continueOnError: bool = False


class BatchRequest(BaseModel):
    """Several steps in one workspace; ``atomic`` undoes them all if one fails."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["v1"] = "v1"
    workspace: str | None = None
    atomic: bool = False
    steps: list[BatchStep]


@dataclass(frozen=True)
class RetryPolicy:
    """How a call is retried after a transport error, a 5xx, or a key still in flight.

    ``attempts`` counts every try (1: never retry). The n-th retry waits a random time in
    ``[0, min(max_backoff, backoff * 2**(n-1))]`` seconds ("full jitter").
    """

    attempts: int = 4
    backoff: float = 0.25
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("attempts must be >= 1 and backoffs >= 0")

    def options(self) -> dict[str, Any]:
        """Keyword arguments for tenacity's ``Retrying`` and ``AsyncRetrying``."""
        return {
            "stop": stop_after_attempt(self.attempts),
            "wait": wait_random_exponential(multiplier=self.backoff, max=self.max_backoff),
            "retry": retry_if_exception_type(httpx.TransportError) | retry_if_result(is_retryable),
            "before_sleep": before_sleep_log(log, logging.WARNING),
            "retry_error_callback": _last_outcome,
        }


def is_retryable(response: httpx.Response) -> bool:
    """Whether an answer calls for another attempt with the same Idempotency-Key."""
    if response.is_server_error:
        return True
    if response.status_code != IN_FLIGHT_STATUS:
        return False
    try:
        return bool(response.json().get("code") == IN_FLIGHT_CODE)
    except ValueError:
        return False


def _last_outcome(state: RetryCallState) -> httpx.Response:
    # Out of attempts: the caller gets the last answer (or transport error) as it was.
    assert state.outcome is not None
    response: httpx.Response = state.outcome.result()
    return response


def _delete_body(
    paths: Sequence[str], workspace: str | None, globs: bool, strict: bool
) -> dict[str, Any]:
    request = DeleteRequestV1(
        workspace=workspace, paths=list(paths), pathsAreGlobs=globs, strict=strict
    )
    return request.model_dump(mode="json", exclude_none=True)


def _batch_body(steps: Sequence[BatchStep], workspace: str | None, atomic: bool) -> dict[str, Any]:
    request = BatchRequest(workspace=workspace, atomic=atomic, steps=list(steps))
    return request.model_dump(mode="json", by_alias=True, exclude_none=True)


def result_of(response: httpx.Response, model: type[Result]) -> Result:
    """``model`` from a 2xx answer; the typed error for a problem; else ``UnexpectedResponse``."""
    if response.is_success:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise UnexpectedResponse(response.status_code, response.text) from None
    raise problem_error(response)


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
        return UnexpectedResponse(response.status_code, response.text)
    return FAMILIES.get(problem["code"], ProblemError)(problem)


class _Settings:
    """What both clients share: how to authenticate and how to retry."""

    def __init__(self, token: str | None, retry: RetryPolicy | None) -> None:
        self.retry = retry or RetryPolicy()
        self.headers = {"Accept": f"application/json, {PROBLEM_MEDIA_TYPE}"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call_headers(self, idempotency_key: str | None) -> dict[str, str]:
        """Headers of one logical call: the same ``Idempotency-Key`` on every attempt."""
        return {IDEMPOTENCY_HEADER: idempotency_key or str(uuid.uuid4())}


class StepdClient:
    """Blocking client; use as a context manager or call ``close()``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._settings = _Settings(token, retry)
        self._http = httpx.Client(
            base_url=base_url, headers=self._settings.headers, timeout=timeout
        )

    def delete(
        self,
        *paths: str,
        workspace: str | None = None,
        globs: bool = False,
        strict: bool = False,
        idempotency_key: str | None = None,
    ) -> DeleteResultV1:
        """Run a v1 delete step of ``paths`` (patterns with ``globs``)."""
        body = _delete_body(paths, workspace, globs, strict)
        response = self._post("/steps/delete", body, idempotency_key)
        return result_of(response, DeleteResultV1)

    def batch(
        self,
        steps: Sequence[BatchStep],
        *,
        workspace: str | None = None,
        atomic: bool = False,
        idempotency_key: str | None = None,
    ) -> BatchResultV1:
        """Run ``steps`` in order in one workspace (all undone on failure if ``atomic``)."""
        body = _batch_body(steps, workspace, atomic)
        response = self._post("/steps/batch", body, idempotency_key)
        return result_of(response, BatchResultV1)

    def _post(self, path: str, body: dict[str, Any], key: str | None) -> httpx.Response:
        headers = self._settings.call_headers(key)
        retrying = Retrying(**self._settings.retry.options())
        try:
            response: httpx.Response = retrying(self._http.post, path, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise StepdConnectionError(f"POST {path}: {exc!r}") from exc
        return response

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStepdClient:
    """Asynchronous client; use as an async context manager or await ``aclose()``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._settings = _Settings(token, retry)
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=self._settings.headers, timeout=timeout
        )

    async def delete(
        self,
        *paths: str,
        workspace: str | None = None,
        globs: bool = False,
        strict: bool = False,
        idempotency_key: str | None = None,
    ) -> DeleteResultV1:
        """Run a v1 delete step of ``paths`` (patterns with ``globs``)."""
        body = _delete_body(paths, workspace, globs, strict)
        response = await self._post("/steps/delete", body, idempotency_key)
        return result_of(response, DeleteResultV1)

    async def batch(
        self,
        steps: Sequence[BatchStep],
        *,
        workspace: str | None = None,
        atomic: bool = False,
        idempotency_key: str | None = None,
    ) -> BatchResultV1:
        """Run ``steps`` in order in one workspace (all undone on failure if ``atomic``)."""
        body = _batch_body(steps, workspace, atomic)
        response = await self._post("/steps/batch", body, idempotency_key)
        return result_of(response, BatchResultV1)

    async def _post(self, path: str, body: dict[str, Any], key: str | None) -> httpx.Response:
        headers = self._settings.call_headers(key)
        retrying = AsyncRetrying(**self._settings.retry.options())
        try:
            response: httpx.Response = await retrying(
                self._http.post, path, json=body, headers=headers
            )
        except httpx.TransportError as exc:
            raise StepdConnectionError(f"POST {path}: {exc!r}") from exc
        return response

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
