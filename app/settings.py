"""Settings, from ``stepd serve`` options or ``STEPD_*`` environment variables.

Every field of ``Settings`` is one setting: the variable ``STEPD_<NAME>`` and the option
``--<name>`` (``knob``). The command line's options and help are generated from the
fields, so each field's ``description`` is the text an operator reads.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "STEPD_"
ROOT_PATH_PATTERN = r"^(/[^/\s]+)*$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
STORE_URL_PATTERN = r"^(sqlite:///\S*|postgres(ql)?://\S*)$"


class ConfigError(Exception):
    """A setting that keeps the service from starting; the message is one line."""


class Settings(BaseSettings):
    """Everything stepd can be told; see docs/CONFIGURATION.md for each variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on.")
    workspace_root: Path = Field(
        Path("workspace"), description="Directory that every request is confined to."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe level that is logged."
    )
    auth_tokens_file: Path | None = Field(
        None, description="File of bearer tokens, one per line; unset: no authentication."
    )
    allow_unauthenticated: bool = Field(
        False, description="Allow serving a non-loopback address without tokens."
    )
    metrics_auth: bool = Field(False, description="Require a bearer token for /metrics as well.")
    tls_cert_file: Path | None = Field(None, description="PEM certificate (chain): serve HTTPS.")
    tls_key_file: Path | None = Field(None, description="PEM private key of the certificate.")
    max_body_bytes: int = Field(1024 * 1024, ge=1, description="Largest request body, in bytes.")
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client has to send the whole request body."
    )
    keep_alive_timeout: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="Largest request line plus headers, in bytes."
    )
    header_timeout: float = Field(
        5.0, gt=0, description="Seconds a client has to send the request line and headers."
    )
    max_concurrency: int = Field(
        100,
        ge=1,
        description="Requests served at once; beyond it, 503 `overloaded` at once "
        "(`/healthz` exempt).",
    )
    max_connections: int = Field(
        256,
        ge=1,
        description="Open connections; beyond it, requests are answered 503 `overloaded` "
        "and their connection closed (`/healthz` exempt).",
    )
    step_workers: int = Field(8, ge=1, description="Threads that run step work.")
    step_queue: int = Field(
        64,
        ge=0,
        description="Step requests that may wait for a thread; beyond it, 503 `overloaded`.",
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="One JSON object per line, or human-readable lines."
    )
    metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    shutdown_timeout: float = Field(
        25,
        gt=0,
        description="Seconds in-flight requests get to finish after SIGTERM.",
    )
    shutdown_step_timeout: float = Field(
        3,
        gt=0,
        description="Seconds step work still running past the shutdown timeout gets to stop "
        "at a safe point, before it is stopped inside the entry it is removing.",
    )
    max_batch_steps: int = Field(1000, ge=1, description="Most steps one batch may hold.")
    max_glob_entries: int = Field(
        1_000_000,
        ge=1,
        description="Most directory entries one request's glob patterns may visit (an entry "
        "compared with several patterns counts once for each); past it, "
        "`422 glob_too_broad` before anything is deleted.",
    )
    state_dir: Path | None = Field(
        None,
        description="Where stepd keeps its state (idempotency records); default "
        "`<root>/.stepd/state`, which no request can reach.",
    )
    idempotency_store: str | None = Field(
        None,
        pattern=STORE_URL_PATTERN,
        description="Where idempotency records are kept: `sqlite:///<directory>` (a SQLite "
        "database in that directory, for one host), or `postgresql://...` (a PostgreSQL "
        "database shared by replicas; a libpq URL). Unset: SQLite in the state directory.",
    )
    idempotency_pool_size: int = Field(
        8, ge=1, description="Most connections to a PostgreSQL idempotency store."
    )
    idempotency_store_timeout: float = Field(
        3.0,
        gt=0,
        description="Seconds a request with an Idempotency-Key waits for a connection to a "
        "PostgreSQL store before answering 503 `store_unavailable`.",
    )
    idempotency_ttl: timedelta = Field(
        timedelta(hours=24), description="How long an Idempotency-Key's response is kept."
    )
    idempotency_max_records: int = Field(
        1_000_000,
        ge=1,
        description="Most idempotency records kept: past it, the oldest answers are dropped "
        "before they expire (claims of running requests never are).",
    )
    idempotency_lease: timedelta = Field(
        timedelta(seconds=30),
        gt=timedelta(0),
        description="How long the claim of a running request's idempotency key holds unless "
        "renewed (it is renewed every third of it); then another process may take it over.",
    )
    instance_id: str | None = Field(
        None,
        pattern=INSTANCE_ID_PATTERN,
        description="This instance's name (in idempotency claims, and naming its staging "
        "area); default the host name, which is the pod's name.",
    )
    adopt_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between two looks for the staging areas of instances that are "
        "gone (their unfinished atomic batches rolled back, their trash freed).",
    )
    purge: Literal["background", "inline"] = Field(
        "background",
        description="`background`: a delete renames its targets into the trash and answers; "
        "a background purger frees them. `inline`: delete in place before answering.",
    )
    purge_slice: float = Field(
        0.02, gt=0, description="Seconds the purger works before it may pause for requests."
    )
    purge_pause: float = Field(
        0.02,
        ge=0,
        description="Seconds the purger pauses after each slice while requests are served.",
    )
    purge_floor: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Least share of time the purger spends freeing while requests are served "
        "(0 to 1): its pauses are cut short to keep it. 0: it only uses what requests leave.",
    )
    root_path: str = Field(
        "",
        pattern=ROOT_PATH_PATTERN,
        description="Path prefix under which a reverse proxy that strips it serves stepd "
        "(`/stepd`): the spec's `servers` carry it, so Swagger UI's Try it out goes "
        "through the proxy. Empty: served at `/`.",
    )
    kargo_kind_prefix: str = Field(
        "stepd-",
        pattern=r"^[a-z0-9][a-z0-9.-]*$",
        description="Prefix of the step kinds the Kargo step plugin route runs "
        "(`stepd-delete`), so that none is the name of a Kargo built-in step.",
    )
    kargo_token_file: Path | None = Field(
        None,
        description="The file holding the Kargo agent's bearer token for the step plugin "
        "route; unset: that route follows the usual authentication.",
    )
    kargo_duplicate_wait: float = Field(
        20.0,
        ge=0,
        description="Seconds a repeated step plugin request waits for the first one to "
        "finish before answering `Running`.",
    )


def variable(name: str) -> str:
    """The environment variable of the setting ``name`` (``STEPD_PORT``)."""
    return ENV_PREFIX + name.upper()


def option(name: str) -> str:
    """The ``stepd serve`` option of the setting ``name`` (``--port``)."""
    return "--" + name.replace("_", "-")


def knob(name: str) -> str:
    """Both ways to give the setting ``name``, for messages: ``STEPD_PORT / --port``."""
    return f"{variable(name)} / {option(name)}"


def check_workspace_root(path: Path) -> Path:
    """The absolute, resolved workspace root; ``ConfigError`` when it cannot serve as one."""
    resolved = path.expanduser().resolve()
    setting = knob("workspace_root")
    if not resolved.exists():
        raise ConfigError(f"workspace root {str(path)!r} ({setting}) does not exist")
    if not resolved.is_dir():
        raise ConfigError(f"workspace root {str(path)!r} ({setting}) is not a directory")
    if resolved == Path(resolved.anchor):
        raise ConfigError(f"workspace root ({setting}) must not be '/'")
    return resolved


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> str | None:
    """Refuse to serve a non-loopback address without tokens unless explicitly allowed.

    Returns the warning to log when it is allowed, None when there is nothing to warn of.
    """
    if settings.auth_tokens_file is not None or is_loopback(settings.host):
        return None
    if not settings.allow_unauthenticated:
        raise ConfigError(
            f"refusing to serve {settings.host!r} ({knob('host')}) without authentication: "
            f"set {knob('auth_tokens_file')}, bind a loopback address, or set "
            f"{variable('allow_unauthenticated')}=true"
        )
    return (
        f"serving {settings.host!r} without authentication (STEPD_ALLOW_UNAUTHENTICATED=true): "
        "anyone who can reach it can run steps"
    )


_TLS_FILES = ("tls_cert_file", "tls_key_file")


def check_tls(settings: Settings) -> None:
    """``ConfigError`` unless the TLS certificate and key are both unset, or both usable.

    The message names the file at fault and its setting.
    """
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return
    if cert is None or key is None:
        given, missing = ("tls_key_file", "tls_cert_file") if cert is None else _TLS_FILES
        raise ConfigError(
            f"TLS needs both a certificate file and a key file: {knob(given)} is set, "
            f"{knob(missing)} is not"
        )
    for name, path in zip(_TLS_FILES, (cert, key), strict=True):
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {str(path)!r} ({knob(name)}): {exc.strerror or exc}"
            ) from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"cannot load TLS certificate {str(cert)!r} ({knob('tls_cert_file')}) with key "
            f"{str(key)!r} ({knob('tls_key_file')}): {reason}"
        ) from None


def state_dir(settings: Settings, root: Path) -> Path:
    """Where the SQLite idempotency records are kept: the directory of a ``sqlite:///``
    ``STEPD_IDEMPOTENCY_STORE``, ``STEPD_STATE_DIR`` as given, or by default
    ``<root>/.stepd/state``, which stepd reaches through the sandbox (``app.steps.area``);
    ``root`` is the resolved root."""
    return sqlite_dir(settings) or settings.state_dir or root / ".stepd" / "state"


def postgres_url(settings: Settings) -> str | None:
    """The PostgreSQL URL of ``STEPD_IDEMPOTENCY_STORE``, None for SQLite."""
    url = settings.idempotency_store
    return url if url is not None and url.startswith("postgres") else None


def sqlite_dir(settings: Settings) -> Path | None:
    """The directory of a ``sqlite:///<directory>`` ``STEPD_IDEMPOTENCY_STORE``; None when
    the store is not SQLite or names no directory (``sqlite:///``: the default place)."""
    url = settings.idempotency_store
    if url is None or not url.startswith("sqlite:///") or url == "sqlite:///":
        return None
    return Path(url.removeprefix("sqlite://"))


def redacted(url: str) -> str:
    """``url`` without its password, fit for a log line."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def instance_id(settings: Settings) -> str:
    """This instance's name (``STEPD_INSTANCE_ID``, default the host name), a file name:
    a host name with characters other than letters, digits, ``.``, ``_`` and ``-``
    has them replaced by ``_``."""
    return settings.instance_id or re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:128]
