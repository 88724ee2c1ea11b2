"""``renameat2(RENAME_EXCHANGE)``: swap two names atomically, for races in tests.

stepd itself never exchanges; tests use it to flip an entry between two kinds (a
directory and a symlink) with no moment at which the name is absent.
"""

from __future__ import annotations

import ctypes
import os

RENAME_EXCHANGE = 0x2

_libc = ctypes.CDLL(None, use_errno=True)


def rename_exchange(dir_fd: int, first: str, second: str) -> None:
    """Swap ``first`` and ``second`` in the directory open at ``dir_fd``."""
    result = _libc.renameat2(
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(first)),
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(second)),
        ctypes.c_uint(RENAME_EXCHANGE),
    )
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), first)
