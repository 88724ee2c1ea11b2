"""Size limits of ``paths.split``: Linux's PATH_MAX and NAME_MAX, and a bound on segments."""

from __future__ import annotations

import pytest

from app.sandbox.errors import NameTooLong, PathTooLong, TooManySegments
from app.sandbox.paths import MAX_PATH_BYTES, MAX_SEGMENT_BYTES, MAX_SEGMENTS, split


def test_an_entry_of_max_path_bytes_is_accepted() -> None:
    path = "/".join(["d" * 127] * 31)
    path += "/" + "f" * (MAX_PATH_BYTES - len(path) - 1)
    assert len(path.encode()) == MAX_PATH_BYTES
    assert len(split(path)) == 32


def test_one_byte_more_is_path_too_long() -> None:
    path = "/".join(["d" * 127] * 31)
    path += "/" + "f" * (MAX_PATH_BYTES - len(path))
    with pytest.raises(PathTooLong) as caught:
        split(path)
    assert caught.value.code == "path_too_long"
    assert len(caught.value.path) < 100


def test_a_segment_of_max_bytes_is_accepted_and_one_more_is_not() -> None:
    assert split("a/" + "x" * MAX_SEGMENT_BYTES) == ("a", "x" * MAX_SEGMENT_BYTES)
    with pytest.raises(NameTooLong) as caught:
        split("a/" + "x" * (MAX_SEGMENT_BYTES + 1))
    assert caught.value.code == "name_too_long"


def test_segments_are_counted_in_utf8_bytes() -> None:
    with pytest.raises(NameTooLong):
        split("ü" * 128)


def test_max_segments_are_accepted_and_one_more_is_not() -> None:
    assert len(split("/".join(["s"] * MAX_SEGMENTS))) == MAX_SEGMENTS
    with pytest.raises(TooManySegments) as caught:
        split("/".join(["s"] * (MAX_SEGMENTS + 1)))
    assert caught.value.code == "too_many_segments"


def test_dot_segments_count_but_empty_ones_do_not() -> None:
    assert split("//".join(["s"] * MAX_SEGMENTS)) == ("s",) * MAX_SEGMENTS
    with pytest.raises(TooManySegments):
        split("a/" + "./" * MAX_SEGMENTS)


def test_a_lone_surrogate_is_measured_not_crashed_on() -> None:
    assert split("a\ud800") == ("a\ud800",)
