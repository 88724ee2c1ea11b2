"""``X-Request-ID``: take the caller's when it is sane, otherwise make one."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# Visible ASCII only: no spaces or control characters that could forge log lines.
_VALID = re.compile(rb"[\x21-\x7e]{1,128}")


# A new id is this process's random prefix and a counter: 32 hex digits like a uuid4's,
# unique across processes and restarts alike, without a system call per request.
_PREFIX = os.urandom(8).hex()
_counter = itertools.count(1)


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The first ``X-Request-ID`` of ``headers`` (ASGI form) when it is 1..128 visible
    ASCII characters, else a new one (32 hex digits)."""
    for name, value in headers:
        if name.lower() == _HEADER_KEY:
            if _VALID.fullmatch(value):
                return value.decode("ascii")
            break
    return f"{_PREFIX}{next(_counter):016x}"
