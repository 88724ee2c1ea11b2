"""The domain: step kinds and how they run against a sandboxed workspace. No HTTP here."""

from __future__ import annotations
