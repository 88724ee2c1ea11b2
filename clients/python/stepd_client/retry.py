"""When a call is tried again: ``RetryPolicy`` and what counts as transient.

A call is retried, with the same ``Idempotency-Key``, after a transport failure that may
pass (a refused or dropped connection, a timeout), a 5xx answer, or a 409
``idempotency_key_in_flight`` (an earlier attempt whose answer was lost still runs). A
failed TLS handshake is not transient: the certificate will not change between attempts.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    before_sleep_log,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger("stepd_client")

IN_FLIGHT_STATUS = 409
IN_FLIGHT_CODE = "idempotency_key_in_flight"
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How a call is retried (see the module docstring).

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
            "retry": retry_if_exception(is_transient) | retry_if_result(is_retryable),
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


def is_transient(exc: BaseException) -> bool:
    """Whether a transport failure may pass by itself (never a TLS failure)."""
    return isinstance(exc, TRANSIENT_ERRORS) and not is_tls_failure(exc)


def is_tls_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a failed TLS handshake."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _last_outcome(state: RetryCallState) -> httpx.Response:
    # Out of attempts: the caller gets the last answer (or transport error) as it was.
    assert state.outcome is not None
    response: httpx.Response = state.outcome.result()
    return response
