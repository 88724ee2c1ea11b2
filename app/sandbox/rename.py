"""``renameat2(RENAME_NOREPLACE)`` through ctypes: a rename that never overwrites.

Python's ``os.rename`` replaces an existing destination (a file silently, an empty
directory too). Putting an entry back where it came from must not destroy whatever took
its place meanwhile, so we ask the kernel to refuse instead (Linux 3.15+, glibc 2.28+).
Where the call or the filesystem lacks it we check first and rename after: a narrow race,
documented, rather than no restore at all.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

RENAME_NOREPLACE = 0x1


def _load() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function: Callable[..., int] | None = getattr(libc, "renameat2", None)
    return function


_renameat2 = _load()


def rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """Rename ``src`` in ``src_fd`` to ``dst`` in ``dst_fd``; ``FileExistsError`` if taken."""
    if _renameat2 is not None:
        result = _renameat2(
            ctypes.c_int(src_fd),
            ctypes.c_char_p(os.fsencode(src)),
            ctypes.c_int(dst_fd),
            ctypes.c_char_p(os.fsencode(dst)),
            ctypes.c_uint(RENAME_NOREPLACE),
        )
        if result == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), dst)
    try:
        os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
