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

    ``name`` is one segment (the API's workspaces) or several joined by ``/`` (a Kargo
    work dir beneath the root), already normalised; each is opened in turn as a real
    directory on the root's mount. Opening it can fail (a symlink, a mount point, a
    reserved name): ``get`` raises that error each time it is asked, so that it is every
    step's failure rather than the batch's.
    """

    def __init__(self, root: Root, name: str | None) -> None:
        self.root = root
        self.name = name
        self._opened: Root | None = None
        self._error: SandboxError | None = None

    def __enter__(self) -> Workspace:
        if self.name is not None:
            try:
                self._opened = _open_beneath(self.root, self.name.split("/"))
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


def _open_beneath(root: Root, segments: list[str]) -> Root | None:
    """The directory ``segments`` beneath ``root``, one level at a time; None if absent."""
    current: Root | None = root
    try:
        for segment in segments:
            assert current is not None
            child = current.open_subdir(segment)
            if current is not root:
                current.close()
            current = child
            if current is None:
                return None
    except BaseException:
        if current is not None and current is not root:
            current.close()
        raise
    return current
