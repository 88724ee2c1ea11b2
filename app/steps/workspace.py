"""Workspaces: the directories beneath the root that steps run in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.sandbox import Root

# The root's hidden area for stepd's own state; no request path or glob can reach it.
RESERVED_NAME = ".stepd"
RESERVED = frozenset({RESERVED_NAME})


@contextmanager
def open_workspace(root: Root, name: str | None) -> Iterator[Root | None]:
    """The workspace ``name`` as a root of its own (None: absent), or ``root`` itself."""
    if name is None:
        yield root
        return
    workspace = root.open_subdir(name)
    try:
        yield workspace
    finally:
        if workspace is not None:
            workspace.close()
