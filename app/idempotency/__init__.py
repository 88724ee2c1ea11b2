"""Idempotency-Key support: the key's syntax, request fingerprints, and where responses are
kept for replay (``store.IdempotencyStore``; ``sqlite.SQLiteStore`` for one process).
HTTP-free: ``app.api.idempotency`` is the middleware that uses it."""

from __future__ import annotations
