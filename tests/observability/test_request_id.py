"""``X-Request-ID`` values: a sane caller's id is kept, anything else is replaced."""

from __future__ import annotations

import re

import pytest

from app.observability.request_id import request_id

UUID_HEX = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("value", [b"a", b"x" * 128, b"req-1/2:3@host", b"!~"])
def test_visible_ascii_up_to_128_is_kept(value: bytes) -> None:
    assert request_id([(b"x-request-id", value)]) == value.decode()


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 129, b"a b", b"a\tb", b"line\nbreak", b"\x7f", "\u00e9t\u00e9".encode()],
)
def test_anything_else_is_replaced(value: bytes) -> None:
    assert UUID_HEX.fullmatch(request_id([(b"x-request-id", value)]))


def test_generated_when_absent_and_fresh_each_time() -> None:
    first = request_id([(b"accept", b"*/*")])
    assert UUID_HEX.fullmatch(first)
    assert first != request_id([])


def test_first_header_wins() -> None:
    assert request_id([(b"x-request-id", b"one"), (b"x-request-id", b"two")]) == "one"
