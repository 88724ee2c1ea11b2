"""Helpers the test suites share: a real server subprocess, tree snapshots, trees to
delete, mounts, the delete endpoints and the traversal corpus."""

from __future__ import annotations
