"""``statx`` through ctypes: an entry's mode and mount id, as ``/proc`` tells them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.sandbox.fd import mount_id
from app.sandbox.statx import mount_of


def test_mode_and_mount_id_match_what_an_open_descriptor_shows(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    os.symlink("/proc", tmp_path / "link")
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = mount_of(dir_fd, "file")
        if found is None:
            pytest.skip("no statx mount id on this kernel")
        fd = os.open("file", os.O_PATH, dir_fd=dir_fd)
        try:
            assert found == (os.fstat(fd).st_mode, mount_id(fd))
        finally:
            os.close(fd)
        link = mount_of(dir_fd, "link")
        assert link is not None
        assert stat.S_ISLNK(link[0]), "a symlink is not followed"
        assert link[1] == found[1], "the link lies on the directory's mount, /proc does not"
        with pytest.raises(FileNotFoundError):
            mount_of(dir_fd, "missing")
    finally:
        os.close(dir_fd)
