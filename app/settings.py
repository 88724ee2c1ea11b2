"""Settings, from ``stepd serve`` options or ``STEPD_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A setting that keeps the service from starting; the message is one line."""


class Settings(BaseSettings):
    """Everything stepd can be told; see the README for each variable."""

    model_config = SettingsConfigDict(env_prefix="STEPD_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on.")
    workspace_root: Path = Field(
        Path("workspace"), description="Directory that every request is confined to."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_batch_steps: int = Field(1000, ge=1, description="Most steps one batch may hold.")
    state_dir: Path | None = Field(
        None,
        description="Where stepd keeps its state (idempotency records); default "
        "`<root>/.stepd/state`, which no request can reach.",
    )
    idempotency_ttl: timedelta = Field(
        timedelta(hours=24), description="How long an Idempotency-Key's response is kept."
    )


def check_workspace_root(path: Path) -> Path:
    """The absolute, resolved workspace root; ``ConfigError`` when it cannot serve as one."""
    resolved = path.expanduser().resolve()
    if not resolved.exists():
        raise ConfigError(f"workspace root {str(path)!r} does not exist")
    if not resolved.is_dir():
        raise ConfigError(f"workspace root {str(path)!r} is not a directory")
    if resolved == Path(resolved.anchor):
        raise ConfigError("workspace root must not be '/'")
    return resolved


def state_dir(settings: Settings, root: Path) -> Path:
    """The state directory, created (mode 0700) if missing; ``root`` is the resolved root."""
    path = settings.state_dir or root / ".stepd" / "state"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
