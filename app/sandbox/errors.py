"""Errors raised by the sandbox.

Every failure of a sandboxed operation is a ``SandboxError``; each class carries a stable
snake_case ``code`` that outer layers map to their own vocabulary (HTTP statuses, say)::

    SandboxError
    ├── InvalidPath          the path can never name an entry beneath the root
    │   ├── PathTooLong          longer than PATH_MAX bytes
    │   └── TooManySegments      more segments than allowed
    ├── OutsideRoot          resolving it would leave the root (``..``, a symlink, a mount)
    ├── InvalidPattern       a glob pattern that cannot be parsed
    ├── GlobTooBroad         glob patterns that would visit more entries than allowed
    └── FilesystemError      the filesystem refused (wraps an ``OSError``)
        ├── PermissionDenied     EACCES, EPERM
        ├── ReadOnlyFilesystem   EROFS
        ├── Busy                 EBUSY, ETXTBSY, or a concurrent change that kept us from finishing
        │                        (ENOTDIR, EISDIR where we had seen the other kind)
        ├── SymlinkLoop          ELOOP: too many symbolic links while resolving
        ├── NameTooLong          ENAMETOOLONG
        ├── NoSpace              ENOSPC, EDQUOT
        ├── CrossDevice          EXDEV: a rename would cross filesystems
        ├── TooManyOpenFiles     EMFILE, ENFILE
        └── IOFailure            EIO and anything else the kernel reported

Messages name paths relative to the root only: the root's own location never leaks.
``path`` and the paths in messages are ``paths.printable``: safe in JSON and logs, even
for a name that is not valid UTF-8.
"""

from __future__ import annotations

import errno

from app.sandbox.names import printable


class SandboxError(Exception):
    """Base of every sandbox error. ``path`` is relative to the root (may be empty)."""

    code = "sandbox_error"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = printable(path)


class InvalidPath(SandboxError):
    """An absolute path, a NUL byte, the root itself, a reserved name, a bad workspace name."""

    code = "invalid_path"


class PathTooLong(InvalidPath):
    """An entry longer than ``paths.MAX_PATH_BYTES``."""

    code = "path_too_long"


class TooManySegments(InvalidPath):
    """An entry with more than ``paths.MAX_SEGMENTS`` segments."""

    code = "too_many_segments"


class OutsideRoot(SandboxError):
    """The path climbs out lexically, through a symlink, or across a mount point."""

    code = "path_outside_workspace"


class InvalidPattern(SandboxError):
    """A glob pattern that cannot be parsed (unclosed ``[`` or ``{``, dangling ``\\``...)."""

    code = "invalid_glob"


class GlobTooBroad(SandboxError):
    """The request's glob walks would visit more entries than their budget allows."""

    code = "glob_too_broad"


class FilesystemError(SandboxError):
    """The kernel refused an operation; ``errno`` keeps the original error number."""

    code = "filesystem_error"

    def __init__(self, message: str, path: str = "", err: int = 0) -> None:
        super().__init__(message, path)
        self.errno = err


class PermissionDenied(FilesystemError):
    code = "permission_denied"


class ReadOnlyFilesystem(FilesystemError):
    code = "read_only_filesystem"


class Busy(FilesystemError):
    code = "busy"


class SymlinkLoop(FilesystemError):
    code = "symlink_loop"


class NameTooLong(FilesystemError):
    code = "name_too_long"


class NoSpace(FilesystemError):
    code = "no_space"


class CrossDevice(FilesystemError):
    code = "cross_device"


class TooManyOpenFiles(FilesystemError):
    code = "too_many_open_files"


class IOFailure(FilesystemError):
    code = "io_error"


_BY_ERRNO: dict[int, type[FilesystemError]] = {
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.EROFS: ReadOnlyFilesystem,
    errno.EBUSY: Busy,
    errno.ETXTBSY: Busy,
    errno.ENOTEMPTY: Busy,
    # Every place that can meet a file where it saw a directory (or the reverse) handles
    # it; should one still surface, the entry changed kind under us: a retry may succeed.
    errno.ENOTDIR: Busy,
    errno.EISDIR: Busy,
    errno.ELOOP: SymlinkLoop,
    errno.ENAMETOOLONG: NameTooLong,
    errno.ENOSPC: NoSpace,
    errno.EDQUOT: NoSpace,
    errno.EXDEV: CrossDevice,
    errno.EMFILE: TooManyOpenFiles,
    errno.ENFILE: TooManyOpenFiles,
}


def from_os_error(exc: OSError, path: str, action: str) -> FilesystemError:
    """Translate an ``OSError`` met while doing ``action`` on ``path`` (root-relative)."""
    err = exc.errno or 0
    cls = _BY_ERRNO.get(err, IOFailure)
    reason = exc.strerror or errno.errorcode.get(err, "unknown error")
    where = f" '{printable(path)}'" if path else ""
    return cls(f"cannot {action}{where}: {reason}", path=path, err=err)
