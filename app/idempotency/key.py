"""The ``Idempotency-Key`` header's value (draft-ietf-httpapi-idempotency-key-header).

The draft makes it a Structured Field String: ``"..."`` with ``\\"`` and ``\\\\`` escapes
and printable ASCII inside. Many clients send the bare value, so a token of visible ASCII
without quotes, backslashes or commas (which join repeated header lines) is accepted too
and means the same key (``abc`` and ``"abc"`` are one key). The key is 1..255 characters
once unquoted; parameters and several header lines are refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_LENGTH = 255

_BARE = re.compile(r"[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+")
_QUOTED = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')


class InvalidKey(ValueError):
    """The header is present but is not one valid key; the message says why."""


def parse_key(values: Sequence[str]) -> str:
    """The key carried by the ``Idempotency-Key`` header lines ``values`` (at least one)."""
    if len(values) != 1:
        raise InvalidKey("send exactly one Idempotency-Key header")
    value = values[0].strip(" \t")
    if quoted := _QUOTED.fullmatch(value):
        key = re.sub(r"\\(.)", r"\1", quoted.group(1))
    elif _BARE.fullmatch(value):
        key = value
    else:
        raise InvalidKey(
            "Idempotency-Key must be a quoted string or a token of visible ASCII characters"
        )
    if not 1 <= len(key) <= MAX_LENGTH:
        raise InvalidKey(f"Idempotency-Key must be 1 to {MAX_LENGTH} characters long")
    return key
