"""The HTTP layer: routes translate HTTP to domain calls, and domain errors to problems."""

from __future__ import annotations
