"""Bearer-token authentication, decided by the gate (``app.api.gate``) before any body is read.

With a token file configured, every path needs ``Authorization: Bearer <token>`` except
``OPEN_PATHS`` (health, readiness, the docs page, the spec), the docs page's assets and
``/metrics`` unless ``metrics_auth``: deny by default, so a route added later is
protected without thought.
Without one, every path is open (the command line then serves only on loopback).

The Kargo step plugin route (``KARGO_PATH``) is the exception when a Kargo token file is
configured: it then takes that one token (the agent's, caller ``kargo-agent``) and
nothing else, and answers 403 ``kargo_token_rejected`` otherwise, as Kargo's step plugin
protocol asks; the token file of stepd's own callers does not apply to it.

The caller is stored in the ASGI scope as ``scope["state"]["caller"]`` (``CALLER_KEY``),
which routes read as ``request.state.caller`` or through ``caller_of(request)``: the token's
name from the file, ``sha256:<12 hex>`` for an unnamed token, or ``ANONYMOUS`` on an open
path or without authentication. It is never the token itself. It is also noted in the
request's record, so that the access line names it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Scope

from app.api.problems import problem_response
from app.api.routes.docs import ASSETS_URL, DOCS_URL
from app.api.tokens import TokenFile
from app.observability.record import note_caller

OPEN_PATHS = frozenset({"/healthz", "/readyz", DOCS_URL, "/openapi.json"})
# Swagger UI's script, stylesheet and icon: a browser fetches them without the token.
OPEN_PREFIX = ASSETS_URL + "/"
METRICS_PATH = "/metrics"
KARGO_PATH = "/api/v1/step.execute"
CALLER_KEY = "caller"
ANONYMOUS = "anonymous"
REALM = 'Bearer realm="stepd"'


def caller_of(request: Request) -> str:
    """The identity of whoever made ``request`` (see the module docstring)."""
    return caller_in(request.scope)


def caller_in(scope: Scope) -> str:
    """The identity of whoever made the request of ``scope``; ``ANONYMOUS`` if unknown."""
    caller: str = scope.get("state", {}).get(CALLER_KEY, ANONYMOUS)
    return caller


class Authenticator:
    """Decides who made a request, or the 401/403 that refuses it (see the module doc);
    applied by the gate (``app.api.gate``) before any body is read."""

    def __init__(
        self,
        tokens: TokenFile | None,
        metrics_auth: bool,
        kargo_tokens: TokenFile | None = None,
    ) -> None:
        self.tokens = tokens
        self.kargo_tokens = kargo_tokens
        self.open_paths = OPEN_PATHS if metrics_auth else OPEN_PATHS | {METRICS_PATH}

    def refusal(self, scope: Scope, authorization: list[bytes]) -> ASGIApp | None:
        """The answer refusing the request of ``scope``, whose ``Authorization`` header
        values are ``authorization``; None when it may go on, its caller then noted in
        the scope and the request's record."""
        caller = ANONYMOUS
        path: str = scope["path"]
        if self.kargo_tokens is not None and path == KARGO_PATH:
            token = _bearer_token(authorization)
            matched = self.kargo_tokens.match(token) if token else None
            if matched is None:
                detail = "the bearer token is not the one in the Kargo token file"
                return problem_response("kargo_token_rejected", detail)
            caller = matched
        elif self.tokens is not None and not self._is_open(path):
            token = _bearer_token(authorization)
            matched = self.tokens.match(token) if token else None
            if matched is None:
                return _unauthorized(token)
            caller = matched
        scope.setdefault("state", {})[CALLER_KEY] = caller
        note_caller(caller)
        return None

    def _is_open(self, path: str) -> bool:
        if path in self.open_paths:
            return True
        # Only the assets themselves: no ``..`` may climb from there to another route.
        return path.startswith(OPEN_PREFIX) and ".." not in path.split("/")


def _bearer_token(values: list[bytes]) -> str | None:
    """The token of the one ``Authorization: Bearer`` header of ``values``; "" if
    malformed; None if none."""
    if not values:
        return None
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    if len(values) > 1 or scheme.lower() != "bearer":
        return ""
    return token.strip()


def _unauthorized(token: str | None) -> ASGIApp:
    # RFC 6750 section 3: no error code when no credentials were given at all.
    if token is None:
        challenge, detail = REALM, "this route needs an 'Authorization: Bearer <token>' header"
    elif token == "":
        challenge = REALM + ', error="invalid_request"'
        detail = "the Authorization header must be one 'Bearer <token>'"
    else:
        challenge, detail = REALM + ', error="invalid_token"', "the bearer token is not accepted"
    response = problem_response("unauthorized", detail)
    response.headers["www-authenticate"] = challenge
    return response
