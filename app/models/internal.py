"""The internal model every API version converts to; free of HTTP and of versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeleteConfig:
    """A delete step's configuration: targets relative to the workspace."""

    paths: tuple[str, ...]
    globs: bool = False
    strict: bool = False


@dataclass(frozen=True)
class DeleteRequest:
    """A request to run one delete step in ``workspace`` (None: the root itself)."""

    api_version: str
    workspace: str | None
    config: DeleteConfig


@dataclass(frozen=True)
class BatchStep:
    """One step of a batch: ``config`` is its kind's internal config (``DeleteConfig``...)."""

    alias: str
    uses: str
    config: Any
    continue_on_error: bool = False


@dataclass(frozen=True)
class BatchRequest:
    """Steps to run in order in ``workspace``; ``atomic``: all or nothing."""

    api_version: str
    workspace: str | None
    atomic: bool
    steps: tuple[BatchStep, ...]
