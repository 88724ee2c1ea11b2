"""``StepdClient`` (blocking) and ``AsyncStepdClient`` (asyncio or trio), over httpx.

Each call is one logical operation with its own ``Idempotency-Key`` (a uuid4, or the
caller's) and ``X-Request-ID``, both the same on every retry (``retry.py``), so that the
server recognises a repeat and its log lines of the call share one id. Results are
``models``; errors are ``errors``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, Retrying

from stepd_client.errors import (
    PROBLEM_MEDIA_TYPE,
    REQUEST_ID_HEADER,
    StepdConnectionError,
    StepdError,
    TLSError,
    UnexpectedResponse,
    invalid_arguments,
    problem_error,
)
from stepd_client.models import (
    BatchBody,
    BatchResult,
    BatchStep,
    DeleteBody,
    DeleteResult,
    DeleteStep,
)
from stepd_client.retry import RetryPolicy, is_tls_failure
from stepd_client.tls import ClientCert, Verify, ssl_context

IDEMPOTENCY_HEADER = "Idempotency-Key"
DELETE_PATH = "/steps/delete"
BATCH_PATH = "/steps/batch"

Result = TypeVar("Result", bound=BaseModel)


def delete_body(
    paths: Sequence[str], workspace: str | None, globs: bool, strict: bool
) -> dict[str, Any]:
    """The JSON body of a delete call; ``InvalidRequest`` if the arguments cannot make one."""
    raw = {"workspace": workspace, "paths": list(paths), "pathsAreGlobs": globs, "strict": strict}
    return _checked(DeleteBody, raw)


def batch_body(steps: Sequence[BatchStep], workspace: str | None, atomic: bool) -> dict[str, Any]:
    """The JSON body of a batch call; ``InvalidRequest`` if the arguments cannot make one."""
    wired = [step.wire() if isinstance(step, DeleteStep) else step for step in steps]
    return _checked(BatchBody, {"workspace": workspace, "atomic": atomic, "steps": wired})


def _checked(model: type[BaseModel], raw: dict[str, Any]) -> dict[str, Any]:
    try:
        body = model.model_validate(raw)
    except ValidationError as exc:
        raise invalid_arguments(exc) from None
    return body.model_dump(mode="json", by_alias=True, exclude_none=True)


def result_of(response: httpx.Response, model: type[Result]) -> Result:
    """``model`` from a 2xx answer; the typed error for a problem; else ``UnexpectedResponse``."""
    if response.is_success:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise UnexpectedResponse(response) from None
    raise problem_error(response)


class _Calls:
    """What both clients share: where the server is, who we are, how calls are made."""

    def __init__(self, base_url: str, token: str | None, retry: RetryPolicy | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.headers = {"Accept": f"application/json, {PROBLEM_MEDIA_TYPE}"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, path: str, idempotency_key: str | None) -> tuple[str, dict[str, str]]:
        """The URL and headers of one logical call, the same on every attempt."""
        headers = {
            **self.headers,
            IDEMPOTENCY_HEADER: idempotency_key or str(uuid.uuid4()),
            REQUEST_ID_HEADER: uuid.uuid4().hex,
        }
        return self.base_url + path, headers

    @staticmethod
    def failed(url: str, headers: dict[str, str], exc: httpx.TransportError) -> StepdError:
        """The error for a transport failure on the last attempt."""
        request_id = headers[REQUEST_ID_HEADER]
        if is_tls_failure(exc):
            return TLSError(
                f"POST {url}: TLS handshake failed ({exc}); for a certificate of your own "
                "CA, pass verify=<CA bundle file or ssl.SSLContext>",
                request_id=request_id,
            )
        return StepdConnectionError(f"POST {url}: {exc!r}", request_id=request_id)


def _own_client_options(verify: Verify, cert: ClientCert | None, timeout: float) -> dict[str, Any]:
    return {"verify": ssl_context(verify, cert), "timeout": timeout}


def _check_injected(http_client: object, verify: Verify, cert: ClientCert | None) -> None:
    if http_client is not None and (verify is not True or cert is not None):
        raise ValueError(
            "verify= and cert= set up the client's own httpx client: with "
            "http_client=, configure TLS on that client instead"
        )


class StepdClient:
    """Blocking client; use as a context manager or call ``close()``.

    ``base_url`` may carry a path prefix (``https://tools.example/stepd``). ``token`` is
    sent as ``Authorization: Bearer``. ``verify`` and ``cert`` set up TLS (see
    ``tls.py``); or pass ``http_client``, an ``httpx.Client`` of your own (transport,
    proxies, TLS, timeouts), which this client uses as it is and never closes.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        verify: Verify = True,
        cert: ClientCert | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        _check_injected(http_client, verify, cert)
        self._calls = _Calls(base_url, token, retry)
        self._owned = http_client is None
        self._http = http_client or httpx.Client(**_own_client_options(verify, cert, timeout))

    def delete(
        self,
        *paths: str,
        workspace: str | None = None,
        globs: bool = False,
        strict: bool = False,
        idempotency_key: str | None = None,
    ) -> DeleteResult:
        """Run a delete step of ``paths`` (patterns with ``globs``) in ``workspace``."""
        body = delete_body(paths, workspace, globs, strict)
        return result_of(self._post(DELETE_PATH, body, idempotency_key), DeleteResult)

    def batch(
        self,
        steps: Sequence[BatchStep],
        *,
        workspace: str | None = None,
        atomic: bool = False,
        idempotency_key: str | None = None,
    ) -> BatchResult:
        """Run ``steps`` in order in one workspace (all undone on failure if ``atomic``)."""
        body = batch_body(steps, workspace, atomic)
        return result_of(self._post(BATCH_PATH, body, idempotency_key), BatchResult)

    def _post(self, path: str, body: dict[str, Any], key: str | None) -> httpx.Response:
        url, headers = self._calls.call(path, key)
        retrying = Retrying(**self._calls.retry.options())
        try:
            response: httpx.Response = retrying(self._http.post, url, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise self._calls.failed(url, headers, exc) from exc
        return response

    def close(self) -> None:
        """Close the connections (not those of an ``http_client`` given)."""
        if self._owned:
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
    """Asynchronous client; use as an async context manager or await ``aclose()``.

    The same options as ``StepdClient``; ``http_client`` is an ``httpx.AsyncClient``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        verify: Verify = True,
        cert: ClientCert | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        _check_injected(http_client, verify, cert)
        self._calls = _Calls(base_url, token, retry)
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(**_own_client_options(verify, cert, timeout))

    async def delete(
        self,
        *paths: str,
        workspace: str | None = None,
        globs: bool = False,
        strict: bool = False,
        idempotency_key: str | None = None,
    ) -> DeleteResult:
        """Run a delete step of ``paths`` (patterns with ``globs``) in ``workspace``."""
        body = delete_body(paths, workspace, globs, strict)
        return result_of(await self._post(DELETE_PATH, body, idempotency_key), DeleteResult)

    async def batch(
        self,
        steps: Sequence[BatchStep],
        *,
        workspace: str | None = None,
        atomic: bool = False,
        idempotency_key: str | None = None,
    ) -> BatchResult:
        """Run ``steps`` in order in one workspace (all undone on failure if ``atomic``)."""
        body = batch_body(steps, workspace, atomic)
        return result_of(await self._post(BATCH_PATH, body, idempotency_key), BatchResult)

    async def _post(self, path: str, body: dict[str, Any], key: str | None) -> httpx.Response:
        url, headers = self._calls.call(path, key)
        retrying = AsyncRetrying(**self._calls.retry.options())
        try:
            response: httpx.Response = await retrying(
                self._http.post, url, json=body, headers=headers
            )
        except httpx.TransportError as exc:
            raise self._calls.failed(url, headers, exc) from exc
        return response

    async def aclose(self) -> None:
        """Close the connections (not those of an ``http_client`` given)."""
        if self._owned:
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
