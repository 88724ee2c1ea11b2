"""Prometheus metrics of one application, and their exposition at ``/metrics``.

Each application has its own registry, so several in one process (tests) never collide.
docs/OBSERVABILITY.md describes every metric. Labels have bounded values: routes are
templates (never raw paths), methods outside the standard ones count as ``other``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import choose_encoder

from app import __version__
from app.observability.record import RequestRecord

UNMATCHED_ROUTE = "<unmatched>"
ENTRY_OUTCOMES = ("deleted", "absent", "failed")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a no-op delete (well under a millisecond) to a big tree deleted in place.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class PurgeFreed(Protocol):
    """What the purger freed since the start: ``entries``, ``files``, ``bytes``."""

    @property
    def entries(self) -> int: ...

    @property
    def files(self) -> int: ...

    @property
    def bytes(self) -> int: ...


class PurgeBacklog(Protocol):
    """What the purger has yet to free: ``entries``, ``files`` and ``bytes`` (None when
    unknown), how many are ``stuck`` (their purge failed), the oldest one's age in
    seconds; what it ``freed`` so far and its recent rate in files per second."""

    @property
    def entries(self) -> int: ...

    @property
    def bytes(self) -> int | None: ...

    @property
    def stuck(self) -> int: ...

    @property
    def oldest_seconds(self) -> float: ...

    @property
    def files(self) -> int | None: ...

    @property
    def freed(self) -> PurgeFreed: ...

    @property
    def files_per_second(self) -> float: ...


@dataclass(frozen=True)
class Freed:
    """A plain ``PurgeFreed``."""

    entries: int = 0
    files: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Backlog:
    """A plain ``PurgeBacklog``."""

    entries: int = 0
    bytes: int | None = 0
    stuck: int = 0
    oldest_seconds: float = 0.0
    files: int | None = 0
    freed: Freed = Freed()
    files_per_second: float = 0.0


class _PurgeFreed:
    """The purger's running totals as counters, read at each scrape (prometheus_client
    counters cannot read a function; these only ever grow)."""

    def __init__(self, freed: Callable[[], PurgeFreed]) -> None:
        self._freed = freed

    def describe(self) -> list[CounterMetricFamily]:
        return self._families(Freed())

    def collect(self) -> list[CounterMetricFamily]:
        return self._families(self._freed())

    @staticmethod
    def _families(freed: PurgeFreed) -> list[CounterMetricFamily]:
        return [
            CounterMetricFamily(
                "stepd_purge_freed_entries",
                "Detached entries the purger freed (a tree counts as one).",
                value=freed.entries,
            ),
            CounterMetricFamily(
                "stepd_purge_freed_files",
                "Files, links and directories the purger removed.",
                value=freed.files,
            ),
            CounterMetricFamily(
                "stepd_purge_freed_bytes",
                "Bytes the purger freed, of entries whose size was known (no directory).",
                value=freed.bytes,
            ),
        ]


NO_BACKLOG = Backlog()


class Metrics:
    """The collectors of one application."""

    def __init__(self) -> None:
        # The ``*_created`` timestamps would show as extra gauges in the text format that
        # Prometheus scrapes, doubling every counter's series; the switch is process-wide.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        Info("stepd_build", "The running stepd.", registry=self.registry).info(
            {"version": __version__}
        )
        self.requests = Counter(
            "stepd_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stepd_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "stepd_http_requests_in_progress",
            "HTTP requests being served now.",
            registry=self.registry,
        )
        entries = Counter(
            "stepd_delete_entries",
            "Entries of delete steps, by outcome: deleted, absent (matched nothing), failed.",
            ["outcome"],
            registry=self.registry,
        )
        self._entries = {outcome: entries.labels(outcome) for outcome in ENTRY_OUTCOMES}
        self._store_latency = Histogram(
            "stepd_idempotency_store_duration_seconds",
            "Time an idempotency store operation took, by operation (claim, complete, "
            "release, renew, ping), failed ones included.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._store_errors = Counter(
            "stepd_idempotency_store_errors",
            "Idempotency store operations that failed, by operation and problem code.",
            ["operation", "code"],
            registry=self.registry,
        )
        # The children of each label set seen: ``labels()`` locks and builds them each call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.started = 0  # HTTP requests begun: a cheap activity signal for background work
        self._backlog: Callable[[], PurgeBacklog] = lambda: NO_BACKLOG
        self._step_busy: Callable[[], int] = lambda: 0
        self._step_queued: Callable[[], int] = lambda: 0
        self._idempotency_records = Gauge(
            "stepd_idempotency_records",
            "Idempotency records kept after the last sweep of the store, claims included.",
            registry=self.registry,
        )
        self._idempotency_dropped = Counter(
            "stepd_idempotency_records_dropped",
            "Idempotency records the sweeps deleted, by reason: expired, evicted (past the cap).",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("expired", "evicted"):
            self._idempotency_dropped.labels(reason)
        Gauge(
            "stepd_step_threads_busy",
            "Threads of the step pool running step work now.",
            registry=self.registry,
        ).set_function(lambda: self._step_busy())
        Gauge(
            "stepd_step_queue_length",
            "Step requests waiting for a thread of the step pool.",
            registry=self.registry,
        ).set_function(lambda: self._step_queued())
        Gauge(
            "stepd_purge_backlog_entries",
            "Detached entries the purger has yet to free.",
            registry=self.registry,
        ).set_function(lambda: self._backlog().entries)
        Gauge(
            "stepd_purge_backlog_bytes",
            "Bytes the purger has yet to free (NaN when unknown).",
            registry=self.registry,
        ).set_function(lambda: _known(self._backlog().bytes))
        Gauge(
            "stepd_purge_backlog_stuck_entries",
            "Of the backlog, entries the purger tried and failed to free; tried again.",
            registry=self.registry,
        ).set_function(lambda: self._backlog().stuck)
        Gauge(
            "stepd_purge_backlog_oldest_seconds",
            "How long the oldest entry of the backlog has been waiting to be freed.",
            registry=self.registry,
        ).set_function(lambda: self._backlog().oldest_seconds)
        Gauge(
            "stepd_purge_backlog_files",
            "Files, links and directories the purger has yet to free (NaN when unknown).",
            registry=self.registry,
        ).set_function(lambda: _known(self._backlog().files))
        Gauge(
            "stepd_purge_files_per_second",
            "Files, links and directories the purger removed per second, lately (~10 s).",
            registry=self.registry,
        ).set_function(lambda: self._backlog().files_per_second)
        self.registry.register(_PurgeFreed(lambda: self._backlog().freed))

    def idempotency_swept(self, expired: int, evicted: int, kept: int) -> None:
        """Count what a sweep of the idempotency store dropped, and what it kept."""
        self._idempotency_dropped.labels("expired").inc(expired)
        self._idempotency_dropped.labels("evicted").inc(evicted)
        self._idempotency_records.set(kept)

    def watch_step_pool(self, busy: Callable[[], int], queued: Callable[[], int]) -> None:
        """Read the step pool's load at each scrape: threads ``busy`` with step work and
        requests ``queued`` for one (both must return at once)."""
        self._step_busy = busy
        self._step_queued = queued

    def watch_purge_backlog(self, source: Callable[[], PurgeBacklog]) -> None:
        """Read the purge backlog from ``source`` at each scrape; it must return at once
        (a value the purger keeps up to date, never a walk of the trash)."""
        self._backlog = source

    def activity(self) -> int:
        """How many HTTP requests have begun: it moves while requests are being served."""
        return self.started

    def observe(
        self, method: str, route: str, status: int, seconds: float, record: RequestRecord
    ) -> None:
        """Count one answered request and the entries of the step it ran."""
        method = method if method in _METHODS else "other"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)
        for outcome, count in record.entries.items():
            self._entries[outcome].inc(count)

    def observe_store(self, operation: str, seconds: float, error: str | None) -> None:
        """Count one idempotency store operation: how long it took, and the problem code
        it failed with (None: it succeeded)."""
        self._store_latency.labels(operation).observe(seconds)
        if error is not None:
            self._store_errors.labels(operation, error).inc()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format ``accept`` asks for (Prometheus text or OpenMetrics),
        with its content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


def _known(value: int | None) -> float:
    """A gauge's value: NaN when unknown."""
    return math.nan if value is None else float(value)
