"""How names are shown outside the sandbox: valid UTF-8 always, and reversibly.

Python gives a name that is not valid UTF-8 as a ``str`` holding lone surrogates
(U+DC80..U+DCFF, one per such byte: ``os.fsdecode``); JSON, logs and stored records cannot
carry those. ``printable`` writes each such byte as an escape instead.
"""

from __future__ import annotations

import re

# A byte that is not valid UTF-8, or a backslash that a reader could take for the start of
# an escape: one before a backslash, before such a byte, or before "x" and two hex digits.
_UNPRINTABLE = re.compile(r"[\udc80-\udcff]|\\(?=[\\\udc80-\udcff]|x[0-9a-fA-F]{2})")


def printable(path: str) -> str:
    """``path`` as stepd reports it (responses, problems, logs): valid UTF-8, reversible.

    Each byte of the name that is not valid UTF-8 is written ``\\xNN`` (two lower-case
    hex digits), and a backslash is doubled where it is followed by a backslash, by such
    an escape or by ``x`` and two hex digits. Read back left to right, ``\\\\`` is a
    backslash, ``\\xNN`` the byte NN, and anything else itself: the original bytes. A
    name that is valid UTF-8 and holds no such backslash is shown exactly as it is.
    """
    return _UNPRINTABLE.sub(_escaped, path)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else f"\\x{ord(char) - 0xDC00:02x}"
