"""Reserved top-level names, recognised by what they are as well as by how they are spelt.

A root may keep top-level names for itself (stepd keeps ``.stepd``) that no request can
reach. Comparing spellings is not enough where the filesystem knows one directory under
several names: a case-insensitive volume (SMB, Azure Files, ext4 casefold) opens
``.STEPD`` as ``.stepd``, and a Windows server answers to 8.3 short names too. So a
top-level directory of another spelling is reserved when its device and inode are those of
a reserved directory as it is now. That costs one ``fstatat`` of the reserved name, made
only for a top-level directory of another spelling, and only in a root that reserves names
(a workspace reserves none).

Listings need no such check: a directory has one entry (no hard links), so the reserved
directory is listed under the name it was created with, whatever spelling opens it.
"""

from __future__ import annotations

import os
import stat

from app.sandbox.fd import lstat_at


class ReservedNames:
    """The reserved names of the root open at ``root_fd`` (borrowed, not closed here)."""

    def __init__(self, root_fd: int, names: frozenset[str]) -> None:
        self._root_fd = root_fd
        self.names = names

    def spelled(self, name: str) -> bool:
        """Whether ``name`` is spelt as a reserved name."""
        return name in self.names

    def holds(self, name: str, st: os.stat_result | None) -> bool:
        """Whether the top-level entry ``name`` is reserved; ``st`` is what ``lstat``
        said of it (None: absent), so that only a directory costs a look at the names."""
        if name in self.names:
            return True
        if not self.names or st is None or not stat.S_ISDIR(st.st_mode):
            return False
        return (st.st_dev, st.st_ino) in self.identities()

    def identities(self) -> set[tuple[int, int]]:
        """Device and inode of each reserved name that is a directory now."""
        found = set()
        for name in self.names:
            st = lstat_at(self._root_fd, name, name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                found.add((st.st_dev, st.st_ino))
        return found
