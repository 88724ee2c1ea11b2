"""What every error answer must be: RFC 9457 problem+json with its stable ``code``."""

from __future__ import annotations

from typing import Any

import httpx

from app.api.problems import CATALOG, MEDIA_TYPE, TYPE_PREFIX


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is the problem ``code`` with ``status``, in the RFC 9457 shape and
    without a traceback; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == TYPE_PREFIX + code
    assert body["title"] == CATALOG[code].title
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "Traceback" not in response.text
    return body


def assert_raw_problem(
    answer: tuple[int, dict[str, str], bytes], status: int, code: str
) -> dict[str, Any]:
    """``assert_problem`` for an answer read from a socket (``server.read_response``);
    it carries an ``X-Request-ID`` too."""
    answered, headers, body = answer
    assert headers.get("x-request-id"), headers
    return assert_problem(httpx.Response(answered, headers=headers, content=body), status, code)
