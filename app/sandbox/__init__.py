"""The sandbox: a rooted filesystem that nothing can be resolved out of.

It knows nothing of steps, HTTP or JSON. See ``root.Root`` for the public surface and
``errors`` for what it raises.
"""

from __future__ import annotations

from app.sandbox.root import Entry, EntryKind, Root

__all__ = ["Entry", "EntryKind", "Root"]
