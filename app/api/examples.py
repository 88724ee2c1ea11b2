"""Examples of successful responses, for the API description (errors: ``problems``)."""

from __future__ import annotations

from typing import Any


def ok_examples(examples: dict[str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` giving the 200 JSON response named Example Objects."""
    return {200: {"content": {"application/json": {"examples": examples}}}}
