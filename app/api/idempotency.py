"""The ``Idempotency-Key`` middleware for the step endpoints.

A request with a key claims it in the store, runs, and its response (status, content
type, body) is kept; the same key with the same request answers that response again,
without running, with ``Idempotent-Replayed: true``. Same key, other request: 422
``idempotency_key_reused``; while the first still runs: 409 ``idempotency_key_in_flight``;
a malformed key: 400 ``invalid_idempotency_key``. Server errors (5xx) and bodies that fail
validation (422 ``invalid_request``) are not kept: the claim is released so that a retry
runs again. When the store cannot keep the claim (a
full or read-only state directory), the request does not run and answers the store's
problem (507 ``no_space``, 409 ``read_only_filesystem``, 503 ``io_error``); requests
without a key never touch the store. A middleware rather than a dependency, so
that every answer is covered, request validation errors included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from typing import Any

from anyio import to_thread
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import caller_in
from app.api.problems import MEDIA_TYPE, problem_response
from app.idempotency.key import InvalidKey, parse_key
from app.idempotency.store import (
    ClaimOutcome,
    IdempotencyStore,
    StoredResponse,
    StoreUnavailable,
    fingerprint,
)

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
REPLAYED = "Idempotent-Replayed"


class IdempotencyMiddleware:
    """Applies Idempotency-Key to POST requests on ``paths``; the store is the app's
    ``state.idempotency``, opened at start-up."""

    def __init__(self, app: ASGIApp, *, paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        values = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == HEADER]
        if not values:
            await self.app(scope, receive, send)
            return
        try:
            key = parse_key(values)
        except InvalidKey as exc:
            await problem_response("invalid_idempotency_key", str(exc))(scope, receive, send)
            return
        body = await _read_body(receive)
        store: IdempotencyStore = scope["app"].state.idempotency
        caller = caller_in(scope)
        try:
            claim = await to_thread.run_sync(
                store.claim, caller, key, fingerprint(scope["method"], scope["path"], body)
            )
        except StoreUnavailable as exc:
            # Without the record the request could not be replayed: do not run it.
            await problem_response(exc.code, exc.message)(scope, receive, send)
            return
        if claim.outcome is ClaimOutcome.NEW:
            await self._run(scope, body, receive, send, store, caller, key)
            return
        if claim.outcome is ClaimOutcome.REPLAY:
            assert claim.response is not None
            response: Response = Response(
                claim.response.body,
                status_code=claim.response.status,
                media_type=claim.response.content_type,
                headers={REPLAYED: "true"},
            )
        elif claim.outcome is ClaimOutcome.IN_FLIGHT:
            response = problem_response(
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still running; retry later",
            )
        else:
            response = problem_response(
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request",
            )
        await response(scope, receive, send)

    async def _run(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        store: IdempotencyStore,
        caller: str,
        key: str,
    ) -> None:
        replayed = False
        settled = False
        status = 500
        content_type = ""
        chunks: list[bytes] = []

        async def receive_body() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def settle() -> None:
            nonlocal settled
            settled = True
            answer = StoredResponse(status, content_type, b"".join(chunks))
            if not _worth_keeping(answer):
                await _settle(store.release, caller, key)
            elif not await _settle(store.complete, caller, key, answer):
                # Without its record a retry would wait for ever.
                await _settle(store.release, caller, key)

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # Kept before the answer ends: a retry sent as soon as the caller has
                    # read it replays the answer instead of finding the key in flight.
                    await settle()
            await send(message)

        try:
            await self.app(scope, receive_body, capture)
        except BaseException:
            if not settled:
                await _settle(store.release, caller, key)
            raise
        if not settled:
            await settle()


def _worth_keeping(answer: StoredResponse) -> bool:
    """Whether a retry should get ``answer`` again: not a server error (a retry may
    succeed), nor a body that fails validation (the same body fails alike, nothing ran)."""
    if answer.status >= 500:
        return False
    if answer.status == 422 and answer.content_type == MEDIA_TYPE:
        return bool(json.loads(answer.body).get("code") != "invalid_request")
    return True


async def _settle(action: Callable[..., None], *args: Any) -> bool:
    """Run a store ``action`` once the response is known; a failure can only be logged
    (the step has run: its answer goes out all the same)."""
    try:
        await to_thread.run_sync(action, *args)
    except StoreUnavailable as exc:
        log.error("idempotency record not updated (%s): %s", action.__name__, exc.message)
        return False
    return True


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            return b"".join(chunks)
