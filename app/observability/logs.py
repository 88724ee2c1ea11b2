"""Log formatting: every record, stepd's and uvicorn's alike, as JSON or for humans.

The code logs through the standard library (``logging.getLogger``); structlog serves only
as the formatter on the root handler. It renders stdlib records with their ``extra``
fields as one JSON object per line (``json``) or as aligned, coloured text (``console``),
and adds the current request's id to every record logged while a request is served.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from app.observability.record import current_record

LogFormat = Literal["json", "console"]


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    record = current_record()
    if record is not None:
        event.setdefault("request_id", record.request_id)
    return event


def _drop_color_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # uvicorn passes a coloured copy of some messages as an ``extra``; the plain one is enough.
    event.pop("color_message", None)
    return event


def formatter(log_format: LogFormat, *, colors: bool = False) -> logging.Formatter:
    """A formatter rendering stdlib records in ``log_format``."""
    pre_chain: list[Processor] = [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        _add_request_id,
    ]
    rendering: list[Processor]
    if log_format == "json":
        rendering = [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ]
    else:
        rendering = [structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )


def configure_logging(log_format: LogFormat, level: str, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stdout by default), formatted as ``log_format``."""
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format, colors=stream.isatty()))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
