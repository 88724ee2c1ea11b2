"""Settings, from ``stepd serve`` options or ``STEPD_*`` environment variables."""

from __future__ import annotations

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
    log_format: Literal["json", "console"] = Field(
        "json", description="One JSON object per line, or human-readable lines."
    )
    metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    shutdown_timeout: int = Field(
        25,
        ge=1,
        description="Seconds in-flight requests get to finish after SIGTERM.",
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
