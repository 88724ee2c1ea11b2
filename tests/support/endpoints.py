"""The HTTP endpoints that run delete steps, and how each carries a step's configuration.

The traversal corpus and the fault suites send every delete configuration through each
endpoint of ``DELETE_ENDPOINTS``; covering a new endpoint that runs delete steps (a batch
of one step, say) is one more entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class DeleteEndpoint:
    """``url``; ``wrap`` turns a delete config into the request body, ``outcome`` reads a
    200 answer back as ``{"deleted": [...], "absent": [...]}``."""

    url: str
    wrap: Callable[[Json], Json]
    outcome: Callable[[Json], Json]

    def body(self, config: Json, workspace: str | None = None) -> Json:
        """The request body running ``config`` in ``workspace`` (None: the root)."""
        body = self.wrap(config)
        return body if workspace is None else {**body, "workspace": workspace}

    def __str__(self) -> str:
        return self.url


DELETE_ENDPOINTS = [
    DeleteEndpoint("/steps/delete", wrap=lambda config: config, outcome=lambda body: body),
    DeleteEndpoint(
        "/steps/batch",
        wrap=lambda config: {"steps": [{"uses": "delete", "config": config}]},
        outcome=lambda body: body["steps"][0],
    ),
]
