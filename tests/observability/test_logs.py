"""Log formatting of stdlib records: JSON lines for machines, aligned text for humans."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from app.observability.logs import configure_logging, formatter
from app.observability.record import recording


def make_record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("stepd.test", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_json_line_carries_extras_level_logger_and_time() -> None:
    line = formatter("json").format(make_record("request", status=200, route="/healthz"))
    parsed = json.loads(line)
    assert parsed["message"] == "request"
    assert parsed["level"] == "info"
    assert parsed["logger"] == "stepd.test"
    assert parsed["status"] == 200
    assert parsed["route"] == "/healthz"
    assert parsed["timestamp"].endswith("Z")
    assert "\n" not in line


def test_json_line_drops_uvicorns_coloured_copy() -> None:
    line = formatter("json").format(make_record("started", color_message="\x1b[1mstarted"))
    assert "color_message" not in json.loads(line)


def test_records_logged_during_a_request_carry_its_id() -> None:
    with recording("req-42"):
        line = formatter("json").format(make_record("inside"))
    assert json.loads(line)["request_id"] == "req-42"
    assert "request_id" not in json.loads(formatter("json").format(make_record("outside")))


def test_exceptions_are_rendered_into_the_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "stepd.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    parsed = json.loads(formatter("json").format(record))
    assert "ValueError: boom" in parsed["exception"]


def test_console_is_plain_text_with_key_values() -> None:
    line = formatter("console").format(make_record("request", status=200, method="GET"))
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert "request" in line
    assert "status=200" in line
    assert "method=GET" in line
    assert "\x1b[" not in line


@pytest.fixture
def restored_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.mark.usefixtures("restored_root_logger")
def test_configure_logging_routes_every_logger_to_the_stream() -> None:
    stream = io.StringIO()
    configure_logging("json", "warning", stream)
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    logging.getLogger("app.somewhere").info("below the level")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("uvicorn.error", "from uvicorn")
    ]
