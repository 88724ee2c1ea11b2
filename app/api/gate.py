"""The gate: one pure ASGI layer doing, in one pass, what every request goes through
before the routes.

Inside the request observer (request id, metrics, the access line:
``app.observability.middleware``), the gate reads the request's headers once, then:

1. authenticates (``app.api.auth``): a refused request ends here, its body unread;
2. reads the body under the limits (``app.api.limits``): type, size, arrival time;
3. hands the request, its body replayed, to the application; to the one with the
   ``Idempotency-Key`` layer (``app.api.idempotency``) only when the request carries
   that header, so that requests without one never pay for it.

One layer rather than one middleware per concern: each layer is a coroutine frame and a
``send``/``receive`` wrapper per request, and each read the headers again.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import Authenticator
from app.api.idempotency import HEADER as IDEMPOTENCY_KEY
from app.api.limits import BodyLimits

_AUTHORIZATION = b"authorization"
_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"


class Gate:
    """Authentication, body limits and the choice of ``keyed`` (the application behind
    the Idempotency-Key layer) or ``plain`` (the same without it), per request."""

    def __init__(
        self, plain: ASGIApp, keyed: ASGIApp, auth: Authenticator, limits: BodyLimits
    ) -> None:
        self.plain = plain
        self.keyed = keyed
        self.auth = auth
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.plain(scope, receive, send)
            return
        authorization: list[bytes] = []
        content_type = content_length = None
        keyed = False
        # uvicorn gives header names in lower case.
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION:
                authorization.append(value)
            elif name == _CONTENT_TYPE:
                if content_type is None:
                    content_type = value
            elif name == _CONTENT_LENGTH:
                if content_length is None:
                    content_length = value
            elif name == IDEMPOTENCY_KEY:
                keyed = True
        refusal = self.auth.refusal(scope, authorization)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        app = self.keyed if keyed else self.plain
        if kind != "http":
            await app(scope, receive, send)
            return
        read = await self.limits.read(
            scope,
            receive,
            (content_type or b"").decode("latin-1"),
            (content_length or b"").decode("latin-1"),
        )
        if callable(read):
            await read(scope, receive, send)
            return
        body = read
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return body

        await app(scope, replay, send)
