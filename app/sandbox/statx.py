"""``statx(2)`` through ctypes, for an entry's mount id in one system call.

Python 3.11 has no ``os.statx``. ``statx`` with ``STATX_MNT_ID`` (Linux 5.8+) gives the
id of the mount an entry lies on, as ``/proc/self/fdinfo`` does for an open descriptor,
but without opening the entry, nor the fdinfo file. Where libc or the kernel lacks it,
``mount_of`` returns None and callers check the way that works everywhere.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable

AT_SYMLINK_NOFOLLOW = 0x100
AT_NO_AUTOMOUNT = 0x800
STATX_TYPE = 0x1
STATX_MNT_ID = 0x1000
_BUFFER_SIZE = 256
# struct statx: stx_mask (u32) at 0, stx_mode (u16) at 0x1c, stx_mnt_id (u64) at 0x90.
_MASK = struct.Struct("=I")
_MODE = struct.Struct("=H")
_MNT_ID = struct.Struct("=Q")


def _load() -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).statx
    except (OSError, AttributeError):
        return None
    function.argtypes = (  # type: ignore[attr-defined]  # a ctypes function pointer
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_char_p,
    )
    function.restype = ctypes.c_int  # type: ignore[attr-defined]
    return function


_statx = _load()


def mount_of(dir_fd: int, name: str) -> tuple[int, int] | None:
    """The mode and mount id of entry ``name`` of ``dir_fd``, a symlink not followed and
    no automount triggered; None where ``statx`` or its mount id is unavailable. Raises
    ``OSError`` (``FileNotFoundError`` for a missing entry)."""
    if _statx is None:
        return None
    buffer = ctypes.create_string_buffer(_BUFFER_SIZE)
    flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT
    while _statx(dir_fd, os.fsencode(name), flags, STATX_TYPE | STATX_MNT_ID, buffer) != 0:
        code = ctypes.get_errno()
        if code == errno.EINTR:
            continue
        if code in (errno.ENOSYS, errno.EPERM):
            return None  # no statx here, or a seccomp filter refuses it
        raise OSError(code, os.strerror(code), name)
    raw = buffer.raw
    if not _MASK.unpack_from(raw, 0)[0] & STATX_MNT_ID:
        return None
    return _MODE.unpack_from(raw, 0x1C)[0], _MNT_ID.unpack_from(raw, 0x90)[0]
