"""Names that are not valid UTF-8: reading back what ``names.printable`` shows, as the
API reference tells clients to."""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def unprintable(shown: str) -> bytes:
    """The bytes of the name shown as ``shown``: ``\\\\`` is a backslash, ``\\xNN`` the
    byte NN, anything else itself (in UTF-8), read left to right."""
    raw = bytearray()
    at = 0
    for escape in _ESCAPE.finditer(shown):
        raw += shown[at : escape.start()].encode()
        code = escape.group(1)
        raw += b"\\" if code == "\\" else bytes([int(code[1:], 16)])
        at = escape.end()
    raw += shown[at:].encode()
    return bytes(raw)
