"""The purger: frees, in the background, what deletes and batches left in the trash.

A plain delete answers as soon as its targets are renamed into the trash
(``Staging.detach``), and an atomic batch as soon as it committed or rolled back; the
purger then removes their trash directories for good, one at a time, in order.

It must not starve request handling on a small machine, so it is bounded three ways:

* one daemon thread, at the lowest CPU priority (nice 19: Linux applies it per thread),
  so the kernel prefers the request threads and the load generator when cores are scarce;
* time slices: after ``slice_seconds`` of removing, if requests were served meanwhile
  (``activity`` moved), it sleeps ``pause_seconds`` (releasing the GIL), so under load it
  takes at most slice / (slice + pause) of the interpreter; idle, it runs at full speed;
* removal is the sandbox's ``remove_tree``: it never follows a symlink and never crosses a
  mount point, whatever a killed process left behind.

Once the staging area has recovered (``Staging.ready``: at start-up, on the first request
the filesystem allows it, or whenever the area was opened anew), the purger takes over
everything already in the trash (a killed process's leftovers); until then (a read-only or
full root) it waits, idle.

A directory that cannot be freed (an immutable file, a mount point inside, a tree that
changed under the walk) stays in the backlog, counted as *stuck*, and is tried again after
``retry_first`` seconds, then twice as long each time up to ``retry_max``, with no
restart: freed as soon as its cause is. A directory the trash no longer holds (the area
was moved or removed) is done: what is no longer in the root is not stepd's to free.
``backlog`` tells what is left to free: entries, bytes when known (None once a directory
is among them: only a walk would tell its size), how many are stuck, and how long the
oldest has waited.

With ``background=False`` (``STEPD_PURGE=inline``) deletes happen in place, and
``dispose`` (and ``take_over``) purge before returning; the thread only retries what could
not be freed then.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from app.sandbox.errors import SandboxError
from app.sandbox.remove import Pace, no_pace
from app.steps.area import Unusable
from app.steps.errors import Stopped
from app.steps.staging import Staging

log = logging.getLogger(__name__)

LOW_PRIORITY = 19
# How many entries between two looks at the clock: a clock read costs more than an unlink's
# Python overhead, and a slice is milliseconds long anyway.
_CLOCK_EVERY = 64
# Seconds before a directory that could not be freed is tried again, doubling each time.
RETRY_FIRST = 1.0
RETRY_MAX = 300.0


class _Stopped(Exception):
    """Signal: the purger is stopping; what is left stays in the trash for the next start."""


@dataclass(frozen=True)
class TrashBacklog:
    """What the purger has yet to free (a ``PurgeBacklog`` for the metrics): ``entries``
    (``stuck`` of them in directories whose last purge failed), ``bytes`` (None when
    unknown), and how long the oldest has waited, in seconds (0 when none)."""

    entries: int
    bytes: int | None
    stuck: int = 0
    oldest_seconds: float = 0.0


@dataclass
class _Item:
    txn_id: str
    entries: int
    size: int | None
    since: float = field(default_factory=time.monotonic)
    failures: int = 0
    retry_at: float = 0.0


class Purger:
    """Frees trash directories in a background thread (or inline: ``background=False``),
    and tries again, in the thread, what could not be freed."""

    def __init__(
        self,
        staging: Staging,
        *,
        background: bool = True,
        slice_seconds: float = 0.02,
        pause_seconds: float = 0.02,
        activity: Callable[[], int] = lambda: 0,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.staging = staging
        self.background = background
        self.slice_seconds = slice_seconds
        self.pause_seconds = pause_seconds
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._activity = activity
        self._queue: deque[_Item] = deque()
        self._stuck: list[_Item] = []
        self._current: _Item | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticks = 0
        self._slice_start = 0.0
        self._seen_activity = 0

    def start(self) -> None:
        """Start the thread. It touches no file by itself: what the trash already holds is
        handed over by the staging area's recovery (``take_over``), whenever the
        filesystem lets that run (at start-up, or on a later request)."""
        self.staging.hand_leftovers_to(self.take_over)
        self._thread = threading.Thread(target=self._run, name="stepd-purger", daemon=True)
        self._thread.start()

    def take_over(self, txn_ids: list[str]) -> None:
        """Free trash directories ``txn_ids``, left by a previous run (and recovered)."""
        items = [_Item(txn_id, self.staging.held(txn_id), None) for txn_id in txn_ids]
        if items:
            log.info("purger: resuming %d trash directories left by a previous run", len(items))
        for item in items:
            self._add(item)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop between two entries; what is left is purged at the next start. Whether
        the thread has ended (it may still use the staging area's descriptors if not)."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def dispose(
        self, txn_id: str, entries: int = 0, size: int | None = 0, *, pace: Pace = no_pace
    ) -> None:
        """Have trash directory ``txn_id`` (holding ``entries`` of ``size`` bytes) freed;
        inline, now, calling ``pace`` as ``Staging.purge`` does (a ``Stopped`` it raises
        leaves the directory for the next start)."""
        self._add(_Item(txn_id, entries, size), pace=pace)

    def backlog(self) -> TrashBacklog:
        """What is left to free; cheap (no walk), for metrics and readiness."""
        with self._changed:
            items = [*self._queue, *self._stuck, *([self._current] if self._current else [])]
        sizes = [item.size for item in items]
        size = None if None in sizes else sum(s for s in sizes if s is not None)
        oldest = min((item.since for item in items), default=None)
        return TrashBacklog(
            entries=sum(item.entries for item in items),
            bytes=size,
            stuck=sum(item.entries for item in items if item.failures),
            oldest_seconds=0.0 if oldest is None else time.monotonic() - oldest,
        )

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is being freed or waiting its turn (stuck directories, waiting
        for their next try, do not count); False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._current, timeout)

    def _add(self, item: _Item, *, pace: Pace = no_pace) -> None:
        with self._changed:
            current = [self._current] if self._current else []
            if any(other.txn_id == item.txn_id for other in (*self._queue, *self._stuck, *current)):
                return  # handed over again by a recovery: already ours
            if self.background:
                self._queue.append(item)
                self._changed.notify_all()
                return
        self._purge(item, pace=pace)

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY)
        except OSError as exc:  # a sandbox that forbids it: pacing still bounds us
            log.warning("purger: cannot lower its priority: %s", exc.strerror)
        while True:
            with self._changed:
                while not self._due():
                    # Woken by new work, or by the clock when a stuck directory's time comes.
                    self._changed.wait(self._until_retry())
                if self._stopping.is_set():
                    return
                item = self._current = self._queue.popleft()
            try:
                self._slice_start = time.monotonic()
                self._seen_activity = self._activity()
                self._purge(item, pace=self._pace)
            except _Stopped:
                return
            finally:
                with self._changed:
                    self._current = None
                    self._changed.notify_all()

    def _due(self) -> bool:
        """Whether there is work now (stuck directories whose time came are queued)."""
        now = time.monotonic()
        for item in [item for item in self._stuck if item.retry_at <= now]:
            self._stuck.remove(item)
            self._queue.append(item)
        return bool(self._queue) or self._stopping.is_set()

    def _until_retry(self) -> float | None:
        retries = [item.retry_at for item in self._stuck]
        return None if not retries else max(0.0, min(retries) - time.monotonic())

    def _purge(self, item: _Item, pace: Pace) -> None:
        """Free ``item``'s directory; if that fails, count it stuck and schedule a retry."""
        try:
            self.staging.purge(item.txn_id, pace=pace)
            if item.failures:
                log.info("purger: freed trash directory %s at last", item.txn_id)
            return
        except (_Stopped, Stopped):
            raise
        except Unusable as exc:
            # Nothing stepd cannot trust is purged; should the area be stepd's again,
            # its recovery hands what it holds over anew.
            log.warning("purger: leaving trash directory %s: %s", item.txn_id, exc)
            return
        except SandboxError as exc:
            reason = str(exc)
        except Exception:
            log.exception("purger: freeing trash directory %s failed unexpectedly", item.txn_id)
            reason = "an unexpected error (logged)"
        item.failures += 1
        delay = min(self.retry_max, self.retry_first * 2 ** (item.failures - 1))
        item.retry_at = time.monotonic() + delay
        with suppress(SandboxError, Unusable):
            left = max(1, self.staging.held(item.txn_id))
            if left != item.entries:
                item.entries, item.size = left, None
        log.warning(
            "purger: cannot free trash directory %s (%d entries left; attempt %d): %s; "
            "trying again in %.1f s",
            item.txn_id,
            item.entries,
            item.failures,
            reason,
            delay,
        )
        with self._changed:
            self._stuck.append(item)
            self._changed.notify_all()

    def _pace(self) -> None:
        """Called after each entry removed: yield to requests, or stop."""
        self._ticks += 1
        if self._ticks % _CLOCK_EVERY:
            return
        if self._stopping.is_set():
            raise _Stopped
        if time.monotonic() - self._slice_start < self.slice_seconds:
            return
        activity = self._activity()
        if activity != self._seen_activity:
            self._seen_activity = activity
            if self._stopping.wait(self.pause_seconds):
                raise _Stopped
        self._slice_start = time.monotonic()
