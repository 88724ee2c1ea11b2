"""``stepd serve``: the command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from app import __version__
from app.api.protocol import Answer, ConnectionLimits, bare_answer, protocol_class
from app.observability.logs import configure_logging
from app.settings import ConfigError, Settings, check_exposure, check_tls, check_workspace_root

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepd", description="Sandboxed file steps over HTTP.")
    parser.add_argument("--version", action="version", version=f"stepd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="address to listen on (STEPD_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (STEPD_PORT, default 8080)")
    serve.add_argument(
        "--workspace-root",
        help="directory every request is confined to (STEPD_WORKSPACE_ROOT, default ./workspace)",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (STEPD_LOG_LEVEL, default info)",
    )
    serve.add_argument("--tls-cert-file", help="PEM certificate: serve HTTPS (STEPD_TLS_CERT_FILE)")
    serve.add_argument("--tls-key-file", help="PEM key of the certificate (STEPD_TLS_KEY_FILE)")
    serve.add_argument(
        "--log-format",
        choices=["json", "console"],
        help="one JSON object per line, or human-readable (STEPD_LOG_FORMAT, default json)",
    )
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the options given on the command line."""
    overrides: dict[str, Any] = {
        name: value
        for name in (
            "host",
            "port",
            "workspace_root",
            "log_level",
            "log_format",
            "tls_cert_file",
            "tls_key_file",
        )
        if (value := getattr(args, name, None)) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {field}: {first['msg']}") from None
    check_workspace_root(settings.workspace_root)
    check_tls(settings)
    return settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stepd`` console script."""
    args = _parser().parse_args(argv)
    from app.main import connection_answers, create_app

    try:
        settings = load_settings(args)
        warning = check_exposure(settings)
        app = create_app(settings)
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
    uvicorn.run(app, **uvicorn_options(settings, connection_answers(app)))
    return 0


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
