"""Canaries: files outside the root that stepd must never touch, checked by content hash,
inode and modification time (and the directory listing, so that a file created beside
them shows too)."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# Names that stepd's own files carry, so that a redirected write would land on a canary.
NAMES = (
    "precious.txt",
    "idempotency.sqlite3",
    "idempotency.sqlite3-wal",
    "idempotency.sqlite3-shm",
    "lock",
    "journal",
)

Record = tuple[str, int, int, str]


def _record(path: Path) -> Record:
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        digest = "link:" + os.readlink(path)
    else:
        digest = "dir:" + ",".join(sorted(os.listdir(path)))
    return (oct(st.st_mode), st.st_ino, st.st_mtime_ns, digest)


@dataclass
class Canaries:
    """Everything beneath ``top`` as it was when ``plant``ed."""

    top: Path
    before: dict[str, Record] = field(default_factory=dict)

    @classmethod
    def plant(cls, top: Path) -> Canaries:
        """Make ``top`` (a directory outside the root) with a file of each of ``NAMES``,
        in it and in ``state/`` and ``trash/`` beneath it, and record them."""
        for where in (top, top / "state", top / "trash"):
            where.mkdir(parents=True, exist_ok=True)
            for name in NAMES:
                (where / name).write_bytes(f"canary {name}\n".encode())
        canaries = cls(top)
        canaries.before = canaries.records()
        return canaries

    def records(self) -> dict[str, Record]:
        records = {".": _record(self.top)}
        for dirpath, dirnames, filenames in os.walk(self.top):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath) / name
                records[str(path.relative_to(self.top))] = _record(path)
        return records

    def changes(self) -> list[str]:
        """What changed beneath ``top`` since it was planted (empty when nothing did)."""
        after = self.records()
        return [
            f"{name}: {self.before.get(name)} -> {after.get(name)}"
            for name in sorted(self.before.keys() | after.keys())
            if self.before.get(name) != after.get(name)
        ]
