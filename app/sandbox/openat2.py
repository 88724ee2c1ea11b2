"""``openat2(2)`` through ctypes, for resolution the kernel keeps beneath a directory.

Python has no binding for ``openat2`` (Linux 5.6+). With ``RESOLVE_BENEATH`` and
``RESOLVE_NO_XDEV`` the kernel itself refuses to leave the starting directory or cross a
mount point, atomically, which no sequence of ``stat`` calls can promise. Where the kernel
or a seccomp filter refuses the call (ENOSYS, EPERM) callers fall back to walking one
component at a time with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Callable

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

# openat2 has the same number on every architecture that postdates the unified table.
_SYS_OPENAT2 = 437
_SUPPORTED_MACHINES = {"x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x"}


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


def _load_syscall() -> Callable[..., int] | None:
    if platform.system() != "Linux" or platform.machine() not in _SUPPORTED_MACHINES:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    return syscall


_syscall = _load_syscall()


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """Open ``path`` relative to ``dir_fd`` with ``resolve`` flags; raise ``OSError``."""
    if _syscall is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), path)
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    encoded = os.fsencode(path)
    while True:
        fd = _syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(encoded),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        # EAGAIN: a concurrent rename or mount raced the lookup; the kernel asks for a retry.
        if err not in (errno.EINTR, errno.EAGAIN):
            raise OSError(err, os.strerror(err), path)


def probe(dir_fd: int) -> bool:
    """Tell whether ``openat2`` works here (kernel, architecture, seccomp policy)."""
    try:
        fd = openat2(dir_fd, ".", os.O_RDONLY | os.O_DIRECTORY, RESOLVE_BENEATH)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
            return False
        raise
    os.close(fd)
    return True
