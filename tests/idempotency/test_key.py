"""The ``Idempotency-Key`` syntax: a quoted string, or a bare token, 1..255 characters."""

from __future__ import annotations

import pytest

from app.idempotency.key import InvalidKey, parse_key


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ('"abc"', "abc"),
        ("abc", "abc"),
        (' "a b" ', "a b"),
        (r'"q\"x\\"', 'q"x\\'),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
    ],
)
def test_valid_keys(value: str, key: str) -> None:
    assert parse_key([value]) == key


@pytest.mark.parametrize("value", ["", '""', "a b", '"a', "a,b", 'a"b', '"x";p=1', "x" * 256])
def test_invalid_keys(value: str) -> None:
    with pytest.raises(InvalidKey):
        parse_key([value])


def test_several_header_lines_are_invalid() -> None:
    with pytest.raises(InvalidKey):
        parse_key(["a", "b"])
