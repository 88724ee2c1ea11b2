"""Request limits, applied by the gate (``app.api.gate``) in front of the routes.

* A body sent to ``/steps/*`` must be JSON (``application/json`` or ``application/*+json``,
  charset UTF-8 if one is named), else 415 ``unsupported_media_type``, from the headers;
  and it must be UTF-8 text without a byte order mark, as RFC 8259 requires of JSON
  exchanged over a network, else 415 too, once read. (Python's JSON parser would take
  UTF-16 and UTF-32, and skip a BOM, by guessing from the first bytes.)
* A ``Content-Length`` above ``max_body_bytes`` is 413 ``payload_too_large`` at once,
  without reading the body; a body (chunked ones included) that grows past it while being
  read is 413 as soon as it does.
* The whole body must arrive within ``body_timeout`` seconds, else 408 ``request_timeout``,
  so a client that stalls mid-body holds no worker.

The body is read here, counted and handed on whole: the routes buffer it anyway, and
this way no limit depends on how a framework reports errors raised while reading. These
answers close the connection, since the rest of the body is never read.
"""

from __future__ import annotations

import asyncio
import codecs

from starlette.types import ASGIApp, Message, Receive, Scope

from app.api.problems import closing_problem, problem_response

JSON_PATH_PREFIX = "/steps/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(Exception):
    """The body grew past the limit while being read."""


class BodyLimits:
    """Enforces the content type, size and arrival time of request bodies; applied by
    the gate (``app.api.gate``)."""

    def __init__(self, max_body_bytes: int, body_timeout: float) -> None:
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def read(
        self, scope: Scope, receive: Receive, content_type: str, content_length: str
    ) -> Message | ASGIApp:
        """The whole body of the request of ``scope`` as one ``http.request`` message (or
        the disconnect that cut it), given its ``Content-Type`` and ``Content-Length``
        ("" when absent); or the answer refusing it."""
        refusal = self._refusal(scope, content_type, content_length)
        if refusal is not None:
            return closing_problem(*refusal)
        try:
            # asyncio's own timeout: anyio's cancel scope costs several times more per request.
            async with asyncio.timeout(self.body_timeout):
                message = await self._read_body(receive)
        except BodyTooLarge:
            detail = f"the body is larger than {self.max_body_bytes} bytes"
            return closing_problem("payload_too_large", detail)
        except TimeoutError:
            detail = f"the body did not arrive within {self.body_timeout:g} seconds"
            return closing_problem("request_timeout", detail)
        if _json_body(scope) and not is_utf8_json_text(message.get("body", b"")):
            detail = "the body must be JSON in UTF-8, without a byte order mark"
            return problem_response("unsupported_media_type", detail)
        return message

    def _refusal(self, scope: Scope, content_type: str, length: str) -> tuple[str, str] | None:
        """The problem the headers alone call for, if any."""
        if _json_body(scope) and not is_json(content_type):
            return "unsupported_media_type", "the body must be application/json (UTF-8)"
        if length.isdigit() and int(length) > self.max_body_bytes:
            return "payload_too_large", f"the body is larger than {self.max_body_bytes} bytes"
        return None

    async def _read_body(self, receive: Receive) -> Message:
        """The whole body as one ``http.request`` message, or the disconnect that cut it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            if not message.get("more_body", False):
                if not chunks:
                    return message
                chunks.append(chunk)
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            chunks.append(chunk)


def _json_body(scope: Scope) -> bool:
    """Whether the request's body must be JSON."""
    path: str = scope["path"]
    return path.startswith(JSON_PATH_PREFIX) and scope["method"] in BODY_METHODS


def is_utf8_json_text(body: bytes) -> bool:
    """Whether ``body`` can be JSON in UTF-8: valid UTF-8, no byte order mark, and no NUL
    (never in JSON text, and in every UTF-16 or UTF-32 encoding of it)."""
    if body.startswith(codecs.BOM_UTF8) or b"\x00" in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON in UTF-8: ``application/json`` or ``/*+json``."""
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    kind, _, subtype = media_type.partition("/")
    if not (kind == "application" and (subtype == "json" or subtype.endswith("+json"))):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True
