"""The record of one HTTP request while it is served: its id and what its step did.

The request observer (``middleware.py``) opens a record per request in a context variable;
the route and the problem responses add to it; when the response is done, the observer
turns it into the request's log line and its metrics. Context variables follow the
request into the worker thread of a blocking route, and the record is shared, not copied,
so what the route notes there is seen by the observer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_current: ContextVar[RequestRecord | None] = ContextVar("stepd_request_record", default=None)


@dataclass
class RequestRecord:
    """What one request did: who made it, the step it ran and the fate of each entry."""

    request_id: str
    caller: str | None = None
    step: str | None = None
    workspace: str | None = None
    entries: Counter[str] = field(default_factory=Counter)
    problem: str | None = None

    def start_step(self, step: str, workspace: str | None) -> None:
        """Note that this request runs ``step`` in ``workspace`` (None: the root)."""
        self.step = step
        self.workspace = workspace

    def deleted(self, path: str) -> None:
        """Count a deleted entry."""
        self.entries["deleted"] += 1

    def absent(self, entry: str) -> None:
        """Count an entry that matched nothing."""
        self.entries["absent"] += 1

    def failed(self, entry: str | None, code: str) -> None:
        """Count an entry that made the step fail."""
        self.entries["failed"] += 1

    def outcome(self) -> dict[str, Any]:
        """The step's outcome for the log line: empty when no step ran."""
        fields: dict[str, Any] = {}
        if self.step is not None:
            fields = {
                "step": self.step,
                "workspace": self.workspace,
                "deleted": self.entries["deleted"],
                "absent": self.entries["absent"],
                "failed": self.entries["failed"],
            }
        if self.problem is not None:
            fields["problem"] = self.problem
        return fields


@contextmanager
def recording(request_id: str) -> Iterator[RequestRecord]:
    """Make a new record the current one for the duration of a request."""
    record = RequestRecord(request_id)
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def current_record() -> RequestRecord | None:
    """The record of the request being served here, if any."""
    return _current.get()


def note_caller(caller: str) -> None:
    """Note who made the current request: a token's name, never the token."""
    record = _current.get()
    if record is not None:
        record.caller = caller


def note_problem(code: str) -> None:
    """Note that the current request is answered with the problem ``code``."""
    record = _current.get()
    if record is not None:
        record.problem = code
