"""Workspaces: the directories beneath the root that steps run in."""

from __future__ import annotations

from types import TracebackType

from app.sandbox import Root
from app.sandbox.errors import SandboxError

# The root's hidden area for stepd's own state; no request path or glob can reach it.
RESERVED_NAME = ".stepd"
RESERVED = frozenset({RESERVED_NAME})


class Workspace:
    """The workspace ``name`` beneath ``root`` (None: the root itself), opened once.

    Opening it can fail (a symlink, a mount point): ``get`` raises that error each time it
    is asked, so that it is every step's failure rather than the batch's.
    """

    def __init__(self, root: Root, name: str | None) -> None:
        self.root = root
        self.name = name
        self._opened: Root | None = None
        self._error: SandboxError | None = None

    def __enter__(self) -> Workspace:
        if self.name is not None:
            try:
                self._opened = self.root.open_subdir(self.name)
            except SandboxError as exc:
                self._error = exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._opened is not None:
            self._opened.close()

    def get(self) -> Root | None:
        """The workspace's own root, or None when it does not exist."""
        if self._error is not None:
            raise self._error
        return self.root if self.name is None else self._opened
