"""``X-Request-ID``: take the caller's when it is sane, otherwise make one."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# Visible ASCII only: no spaces or control characters that could forge log lines.
_VALID = re.compile(rb"[\x21-\x7e]{1,128}")


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The first ``X-Request-ID`` of ``headers`` (ASGI form) when it is 1..128 visible
    ASCII characters, else a new uuid4 in hex."""
    for name, value in headers:
        if name.lower() == _HEADER_KEY:
            if _VALID.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex
