"""``stepd serve``, ``stepd healthcheck`` and ``stepd step``: the command line.

Every setting is an option of both commands, generated from ``Settings`` with its
environment variable and default in the help, so ``--help`` cannot drift from the code.
Exit status 2 is a setting that cannot serve (one line on stderr naming the variable and
the option), 3 a start-up that failed later (uvicorn's own status). ``stepd step <kind>``
runs one step in a directory and exits (``step_command``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import ssl
import sys
import urllib.request
from collections.abc import Collection, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Literal, get_args, get_origin

import uvicorn
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from app import __version__
from app.api.protocol import Answer, ConnectionLimits, bare_answer, protocol_class
from app.observability.logs import configure_logging
from app.settings import (
    ConfigError,
    Settings,
    check_exposure,
    check_tls,
    check_workspace_root,
    knob,
    option,
    state_dir,
    variable,
)

log = logging.getLogger(__name__)

STARTUP_FAILURE = 3
HEALTHCHECK_TIMEOUT = 3.0
# What a health check connects to when the service listens on every address (these
# are only ever looked up here, never bound).
WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}  # noqa: S104


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepd", description="Sandboxed file steps over HTTP.")
    parser.add_argument("--version", action="version", version=f"stepd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API",
        description="Serve the HTTP API. Every option overrides its environment variable.",
    )
    _add_settings(serve)
    healthcheck = commands.add_parser(
        "healthcheck",
        help="exit 0 if the stepd these settings describe answers /healthz on this host",
        description="Ask the stepd that these settings describe, on this host, for /healthz "
        "(over HTTPS when a TLS certificate is set, without verifying it): exit 0 if it "
        "answers 200, else 1. The container image's HEALTHCHECK.",
    )
    _add_settings(healthcheck)
    _add_step_commands(commands)
    return parser


def _add_step_commands(commands: Any) -> None:
    """``stepd step <kind>``: each step kind, run once in a directory (``step_command``)."""
    from app.steps.registry import KINDS

    step = commands.add_parser("step", help="run one step in a directory and exit")
    kinds = step.add_subparsers(dest="kind", required=True)
    for uses in KINDS:
        kind = kinds.add_parser(uses, help=f"run one {uses} step (for Kargo custom steps)")
        kind.add_argument(
            "--config", required=True, help="the step's config: a JSON object, as in API v1"
        )
        kind.add_argument(
            "--workdir",
            default=".",
            help="the directory the step runs in, its root (default: the current directory)",
        )


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One option per setting, defaulting to None so that only given options override."""
    for name, field in Settings.model_fields.items():
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": _help(name, field)}
        if field.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif choices:
            kwargs["choices"] = choices
        parser.add_argument(option(name), **kwargs)


def _help(name: str, field: FieldInfo) -> str:
    annotation: Any = field.annotation
    default = TypeAdapter(annotation).dump_python(field.default, mode="json")
    if isinstance(default, bool):
        shown = str(default).lower()
    else:
        shown = "unset" if default is None else default or "empty"
    text = f"{field.description} [{variable(name)}; default: {shown}]"
    return text.replace("%", "%%")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the options given on the command line;
    ``ConfigError`` naming the variable (or option) of each invalid value."""
    overrides: dict[str, Any] = {
        name: value
        for name in Settings.model_fields
        if (value := getattr(args, name, None)) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _invalid(exc, overrides) from None


def _invalid(exc: ValidationError, given: Collection[str]) -> ConfigError:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in given:
            problems.append(f"{option(name)} {error['input']!r} ({variable(name)}): {error['msg']}")
        elif name in Settings.model_fields:
            problems.append(f"{variable(name)}={error['input']!r} ({option(name)}): {error['msg']}")
        else:
            problems.append(error["msg"])
    return ConfigError("invalid setting " + "; ".join(problems))


def load_settings(args: argparse.Namespace) -> Settings:
    """``settings_from(args)``, with a workspace root and TLS files that can serve."""
    settings = settings_from(args)
    check_workspace_root(settings.workspace_root)
    check_tls(settings)
    return settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stepd`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "healthcheck":
        return healthcheck(args)
    if args.command == "step":
        from app.step_command import run_step

        return run_step(args.kind, args.config, Path(args.workdir))
    from app.main import connection_answers, create_app

    try:
        settings = load_settings(args)
        warning = check_exposure(settings)
        app = create_app(settings)
        # Bound before anything starts: a port in use is this one line, not a start-up
        # that claims to have completed and then fails.
        sockets = bind(settings.host, settings.port)
    except ConfigError as exc:
        print(f"stepd: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if warning:
        log.warning("stepd: %s", warning)
    # uvicorn drains in-flight requests on SIGTERM, then raises the signal again for the
    # handler that was there before: with this one, a completed shutdown exits with 0
    # rather than dying of the signal (143).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # Our formatter on the root logger serves uvicorn's loggers too (log_config=None keeps
    # uvicorn from installing its own), and our access line replaces uvicorn's.
    options = uvicorn_options(settings, connection_answers(app))
    server = _Server(uvicorn.Config(app, **options), settings)
    # Ctrl-C: uvicorn shuts down, then raises SIGINT again; that is a clean stop too.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    return 0 if server.started else STARTUP_FAILURE


def uvicorn_options(settings: Settings, answer: Answer = bare_answer) -> dict[str, Any]:
    """How ``stepd serve`` runs uvicorn (the benchmarks serve their baseline alike):
    h11, with stepd's connection limits answered by ``answer`` (``app.api.protocol``),
    which replace uvicorn's concurrency limit."""
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        max_requests=settings.max_concurrency,
        max_connections=settings.max_connections,
        max_header_bytes=settings.max_header_bytes,
        answer=answer,
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "http": protocol_class(limits),
        "loop": "uvloop",
        "ssl_certfile": settings.tls_cert_file,
        "ssl_keyfile": settings.tls_key_file,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
    }


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address of ``host`` at ``port``, as uvicorn would bind them
    (asyncio listens on them once the application has started); ``ConfigError`` naming
    the setting when one cannot be bound."""
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r} ({knob('host')}): {exc.strerror}") from None
    sockets: list[socket.socket] = []
    for family, kind, proto, _, address in dict.fromkeys(addresses):
        sock = socket.socket(family, kind, proto)
        sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            for opened in sockets:
                opened.close()
            raise ConfigError(
                f"cannot listen on {host}:{port} ({knob('port')}): {exc.strerror or exc}"
            ) from None
    return sockets


class _Server(uvicorn.Server):
    """uvicorn's server, on the sockets ``main`` bound, logging stepd's start-up line."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            message, fields = startup_line(self.settings, sockets[0].getsockname()[1])
            log.info(message, extra=fields)


def startup_line(settings: Settings, port: int) -> tuple[str, dict[str, Any]]:
    """The one line that says what is serving: its URL, and what is in force."""
    from app.idempotency.sqlite import DATABASE

    root = check_workspace_root(settings.workspace_root)
    scheme = "https" if settings.tls_cert_file else "http"
    host = f"[{settings.host.strip('[]')}]" if ":" in settings.host else settings.host
    url = f"{scheme}://{host}:{port}{settings.root_path}"
    if settings.auth_tokens_file is not None:
        auth = f"bearer tokens from {settings.auth_tokens_file}"
    elif settings.allow_unauthenticated:
        auth = f"none ({variable('allow_unauthenticated')})"
    else:
        auth = "none (loopback only)"
    fields = {
        "version": __version__,
        "url": url,
        "root": str(root),
        "auth": auth,
        "tls": f"certificate {settings.tls_cert_file}" if settings.tls_cert_file else "off",
        "purge": settings.purge,
        "store": f"sqlite {state_dir(settings, root) / DATABASE}",
    }
    return f"stepd {__version__} serving {url}", fields


def healthcheck(args: argparse.Namespace) -> int:
    """``stepd healthcheck``: 0 if /healthz answers 200, else 1 with the reason on stderr
    (never 2, which container engines reserve)."""
    try:
        settings = settings_from(args)
        host = WILDCARD_HOSTS.get(settings.host, settings.host).strip("[]")
        context = None
        if settings.tls_cert_file:
            # The check asks whether this process answers, not who it is, on this host:
            # the certificate names the service, rarely the loopback address.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        scheme = "https" if context else "http"
        host = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{host}:{settings.port}/healthz"
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT, context=context):  # noqa: S310
            return 0
    except (ConfigError, OSError) as exc:
        print(f"stepd: healthcheck: {exc}", file=sys.stderr)
        return 1
