"""The path-traversal corpus file: one entry per line, with escapes and placeholders.

See the header of ``tests/fuzz/traversal_corpus.txt`` for the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MOUNT_TAG = "[mount] "
_REPEAT = re.compile(r"\{(\d+)\*([^}]*)\}")


@dataclass(frozen=True)
class CorpusEntry:
    """One line of the corpus, placeholders not yet filled in."""

    line: int
    template: str
    needs_mount: bool

    def expand(self, *, outside: Path, root: Path) -> str:
        """The entry for a tree whose ``outside`` and workspace ``root`` are these."""
        text = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), self.template)
        return text.replace("{outside}", str(outside)).replace("{root}", str(root))


def read_corpus(path: Path) -> list[CorpusEntry]:
    """The entries of the corpus at ``path`` (ASCII, Python escapes decoded)."""
    entries = []
    for number, raw in enumerate(path.read_text(encoding="ascii").split("\n"), start=1):
        if not raw or raw.startswith("#"):
            continue
        needs_mount = raw.startswith(MOUNT_TAG)
        text = raw.removeprefix(MOUNT_TAG).encode("ascii").decode("unicode_escape")
        entries.append(CorpusEntry(number, text, needs_mount))
    return entries
