"""Helpers the test suites share: a real server subprocess, tree snapshots, mounts."""

from __future__ import annotations
