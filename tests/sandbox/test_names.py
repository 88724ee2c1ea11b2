"""Names that are not valid UTF-8: found, measured, deleted, and shown reversibly.

Linux names are bytes; Python hands those that are not valid UTF-8 over with lone
surrogates. The sandbox works on them as they are (one surrogate is one byte, also
against ``NAME_MAX``); outside it they are shown ``printable``, which reads back to the
very bytes, and leaves every other name alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.models.internal import DeleteConfig
from app.sandbox import EntryKind, Root
from app.sandbox.names import printable
from app.sandbox.paths import MAX_SEGMENT_BYTES
from tests.steps.running import run_delete
from tests.support.names import unprintable

# Raw names, each shown as it must be.
SHOWN = {
    b"caf\xe9.yaml": "caf\\xe9.yaml",  # Latin-1
    b"\xff\xfe": "\\xff\\xfe",
    b"half-\xe2\x82": "half-\\xe2\\x82",  # a truncated UTF-8 sequence
    b"\xed\xa0\x80": "\\xed\\xa0\\x80",  # an encoded surrogate: not valid UTF-8
    b"\xc0\xaf": "\\xc0\\xaf",  # an overlong '/'
    b"ok-\xc3\xa9": "ok-\u00e9",  # valid UTF-8 stays as it is
    b"back\\slash": "back\\slash",
    b"x41-\\x41": "x41-\\\\x41",  # would read as an escape: doubled
    b"two\\\\": "two\\\\\\",
    b"\\\x80": "\\\\\\x80",
}
LONGEST = b"\xff" * MAX_SEGMENT_BYTES


@pytest.fixture
def raw_names(root_dir: Path) -> list[bytes]:
    """Every name of ``SHOWN`` as a file in ``dir/``, and the longest possible one."""
    base = os.fsencode(root_dir / "dir")
    os.mkdir(base)
    for name in [*SHOWN, LONGEST]:
        with open(base + b"/" + name, "wb") as handle:
            handle.write(name)
    os.mkdir(base + b"/sub-\xfe")
    return sorted([*SHOWN, LONGEST, b"sub-\xfe"])


@pytest.mark.parametrize(("raw", "shown"), SHOWN.items())
def test_each_name_is_shown_as_documented(raw: bytes, shown: str) -> None:
    assert printable(os.fsdecode(raw)) == shown
    assert unprintable(shown) == raw


@given(st.binary(min_size=1, max_size=40))
def test_what_is_shown_reads_back_to_the_bytes(raw: bytes) -> None:
    shown = printable(os.fsdecode(raw))
    shown.encode("utf-8")  # strict: no lone surrogate left
    json.dumps(shown, ensure_ascii=False).encode("utf-8")
    assert unprintable(shown) == raw


@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\\")))
def test_a_valid_name_without_backslash_is_shown_as_it_is(name: str) -> None:
    assert printable(name) == name


def test_a_glob_finds_them_and_they_are_deleted(root: Root, raw_names: list[bytes]) -> None:
    found = root.glob("dir/*")
    assert sorted(os.fsencode(path.removeprefix("dir/")) for path in found) == raw_names
    for path in found:
        entry = root.lookup(path, limited=False)
        assert entry is not None
        assert entry.kind in (EntryKind.FILE, EntryKind.DIRECTORY)
        assert root.remove(path, limited=False) is True
    assert root.glob("dir/*") == []


def test_the_longest_name_is_measured_in_bytes(root: Root, raw_names: list[bytes]) -> None:
    path = "dir/" + os.fsdecode(LONGEST)
    assert root.lookup(path) is not None
    assert root.remove(path) is True


def test_a_delete_step_reports_them_printable(root: Root, raw_names: list[bytes]) -> None:
    outcome = run_delete(root, DeleteConfig(paths=("dir/*", "dir/sub-?"), globs=True))
    assert sorted(unprintable(path.removeprefix("dir/")) for path in outcome.deleted) == raw_names
    json.dumps(outcome.deleted, ensure_ascii=False).encode("utf-8")
    assert outcome.absent == []  # "dir/sub-?" matched an entry "dir/*" matched too
    assert os.listdir(root.fd) == ["dir"]
