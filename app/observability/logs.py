"""Log formatting: every record, stepd's and uvicorn's alike, as JSON or for humans.

The code logs through the standard library (``logging.getLogger``). JSON lines (``json``)
come from ``JsonFormatter``: a record with its ``extra`` fields as one object per line,
encoded by orjson (several times faster than the standard library's encoder). Aligned,
coloured text (``console``) comes from structlog's console renderer. Both add the
current request's id to every record logged while a request is served.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from app.observability.record import current_record

LogFormat = Literal["json", "console"]

# What every LogRecord has: anything else in its ``__dict__`` came as an ``extra``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
# uvicorn passes a coloured copy of some messages as an ``extra``; the plain one is enough.
_DROPPED = frozenset({"color_message"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: its ``extra`` fields, ``message``, ``timestamp``
    (ISO 8601, UTC), ``level``, ``logger``, the request's ``request_id`` when logged
    during one, and ``exception`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _DROPPED:
                event[key] = value
        event["message"] = record.getMessage()
        if "request_id" not in event and (current := current_record()) is not None:
            event["request_id"] = current.request_id
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            event["exception"] = record.exc_text
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(event, default=str).decode()


_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """``created`` in ISO 8601, UTC, to the microsecond; the part down to the second is
    formatted once per second."""
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((created - whole) * 1e6):06d}Z"


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    record = current_record()
    if record is not None:
        event.setdefault("request_id", record.request_id)
    return event


def _drop_color_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)
    return event


def formatter(log_format: LogFormat, *, colors: bool = False) -> logging.Formatter:
    """A formatter rendering stdlib records in ``log_format``."""
    if log_format == "json":
        return JsonFormatter()
    pre_chain: list[Processor] = [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        _add_request_id,
    ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False),
        ],
    )


def configure_logging(log_format: LogFormat, level: str, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stdout by default), formatted as ``log_format``."""
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format, colors=stream.isatty()))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
