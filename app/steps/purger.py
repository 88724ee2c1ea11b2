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

Once the staging area has recovered (``Staging.ready``: at start-up, or on the first
request the filesystem allows it), the purger takes over everything already in the trash (a
killed process's leftovers); until then (a read-only or full root) it waits, idle. A
directory that cannot be purged (a mount point appeared inside, permissions) is logged
and left for the next start. ``backlog`` is what is left to free: entries, and bytes
when known (None once a directory is among them: only a walk would tell its size).

With ``background=False`` (``STEPD_PURGE=inline``) there is no thread: deletes happen in
place, and ``dispose`` purges a transaction directory before returning.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.sandbox.errors import SandboxError
from app.sandbox.remove import Pace, no_pace
from app.steps.staging import Staging, Transaction

log = logging.getLogger(__name__)

LOW_PRIORITY = 19
# How many entries between two looks at the clock: a clock read costs more than an unlink's
# Python overhead, and a slice is milliseconds long anyway.
_CLOCK_EVERY = 64


class _Stopped(Exception):
    """Signal: the purger is stopping; what is left stays in the trash for the next start."""


@dataclass(frozen=True)
class TrashBacklog:
    """What the purger has yet to free (a ``PurgeBacklog`` for the metrics)."""

    entries: int
    bytes: int | None


@dataclass(frozen=True)
class _Item:
    txn_id: str
    entries: int
    size: int | None


class Purger:
    """Frees trash directories: in a background thread, or inline (``background=False``)."""

    def __init__(
        self,
        staging: Staging,
        *,
        background: bool = True,
        slice_seconds: float = 0.02,
        pause_seconds: float = 0.02,
        activity: Callable[[], int] = lambda: 0,
    ) -> None:
        self.staging = staging
        self.background = background
        self.slice_seconds = slice_seconds
        self.pause_seconds = pause_seconds
        self._activity = activity
        self._queue: deque[_Item] = deque()
        self._current: _Item | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticks = 0
        self._slice_start = 0.0
        self._seen_activity = 0

    def start(self) -> None:
        """Start the thread (background only). It touches no file by itself: what the
        trash already holds is handed over by the staging area's recovery (``take_over``),
        whenever the filesystem lets that run (at start-up, or on a later request)."""
        if not self.background:
            return
        self.staging.hand_leftovers_to(self.take_over)
        self._thread = threading.Thread(target=self._run, name="stepd-purger", daemon=True)
        self._thread.start()

    def take_over(self, txn_ids: list[str]) -> None:
        """Free trash directories ``txn_ids``, left by a previous run (and recovered)."""
        items = [_Item(txn_id, self.staging.held(txn_id), None) for txn_id in txn_ids]
        if items:
            log.info("purger: resuming %d trash directories left by a previous run", len(items))
        with self._changed:
            self._queue.extend(items)
            self._changed.notify_all()

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
        inline, now, calling ``pace`` as ``Transaction.purge`` does."""
        if not self.background:
            Transaction(self.staging, txn_id).purge(pace=pace)
            return
        with self._changed:
            self._queue.append(_Item(txn_id, entries, size))
            self._changed.notify_all()

    def backlog(self) -> TrashBacklog:
        """What is left to free; cheap (no walk), for metrics and readiness."""
        with self._changed:
            items = [*self._queue, *([self._current] if self._current else [])]
        sizes = [item.size for item in items]
        size = None if None in sizes else sum(s for s in sizes if s is not None)
        return TrashBacklog(entries=sum(item.entries for item in items), bytes=size)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is left to free; False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._current, timeout)

    def __len__(self) -> int:
        with self._changed:
            return len(self._queue) + (self._current is not None)

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY)
        except OSError as exc:  # a sandbox that forbids it: pacing still bounds us
            log.warning("purger: cannot lower its priority: %s", exc.strerror)
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                self._current = self._queue.popleft()
            try:
                self._purge(self._current.txn_id)
            except _Stopped:
                return
            finally:
                with self._changed:
                    self._current = None
                    self._changed.notify_all()

    def _purge(self, txn_id: str) -> None:
        self._slice_start = time.monotonic()
        self._seen_activity = self._activity()
        try:
            Transaction(self.staging, txn_id).purge(pace=self._pace)
        except SandboxError as exc:
            log.warning("purger: cannot free trash directory %s: %s", txn_id, exc)
        except _Stopped:
            raise
        except Exception:
            log.exception("purger: freeing trash directory %s failed unexpectedly", txn_id)

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
