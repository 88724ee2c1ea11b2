"""The purger: frees, in the background, what deletes and batches left in the trash.

A plain delete answers as soon as its targets are renamed into the trash
(``Staging.detach``), and an atomic batch as soon as it committed or rolled back; the
purger then removes their trash directories for good, one at a time, in order.

It must not starve request handling on a small machine, nor be starved by it, so it is
bounded both ways:

* one daemon thread, at a low CPU priority (Linux applies it per thread): ``niceness``,
  that of the step threads when it has a floor, so that the floor is real CPU time
  shared with step work on equal terms, and both yield to the event loop; nice 19
  without a floor, so the kernel gives it only what requests leave;
* time slices: after ``slice_seconds`` of removing, if requests were served meanwhile
  (``activity`` moved), it sleeps ``pause_seconds`` (releasing the GIL): a burst of
  requests finds it mostly asleep; idle, it runs at full speed;
* a floor: those pauses are cut short so that the share of time it spent removing over
  about the last second (``SHARE_WINDOW``) never falls below ``floor``, so that sustained
  traffic slows the purge but cannot stop it;
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
``backlog`` tells what is left to free: entries, files and bytes when known (None once a
directory is among them: only a walk would tell), how many are stuck, how long the oldest
has waited; and the progress: entries, files (every file, link and directory removed)
and bytes freed so far (bytes of entries whose size was known), and the recent rate.

With ``background=False`` (``STEPD_PURGE=inline``) deletes happen in place, and
``dispose`` (and ``take_over``) purge before returning; the thread only retries what could
not be freed then.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace

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
# The floor holds over about this many seconds: long enough to let a burst of requests
# through unhindered, short enough that sustained traffic cannot hold the purge off.
SHARE_WINDOW = 1.0
# The rate is that of about the last RATE_WINDOW seconds, sampled every RATE_SAMPLE.
RATE_WINDOW = 10.0
RATE_SAMPLE = 0.25


class _Stopped(Exception):
    """Signal: the purger is stopping; what is left stays in the trash for the next start."""


@dataclass(frozen=True)
class Freed:
    """What the purger freed since it started: ``entries`` (detached entries: a tree
    counts as one), ``files`` (every file, link and directory removed) and ``bytes`` (of
    the entries whose size was known: those detached without a directory)."""

    entries: int = 0
    files: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class TrashBacklog:
    """What the purger has yet to free (a ``PurgeBacklog`` for the metrics): ``entries``
    (``stuck`` of them in directories whose last purge failed), ``files`` and ``bytes``
    (None when unknown), how long the oldest has waited, in seconds (0 when none); what
    it ``freed`` so far, and at what rate lately, in files per second."""

    entries: int
    bytes: int | None
    stuck: int = 0
    oldest_seconds: float = 0.0
    files: int | None = 0
    freed: Freed = Freed()
    files_per_second: float = 0.0


@dataclass(eq=False)  # each is its own: kept in a set while purged
class _Item:
    txn_id: str
    entries: int
    size: int | None
    since: float = field(default_factory=time.monotonic)
    failures: int = 0
    retry_at: float = 0.0
    files: int = 0  # freed by the purge under way (only the thread purging it counts)

    def files_left(self) -> int | None:
        """Files still to free; known only when no directory is among the entries."""
        return None if self.size is None else max(0, self.entries - self.files)


class _Share:
    """The share of time spent working, exponentially weighted over ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.reset(time.monotonic())

    def reset(self, now: float) -> None:
        """Start afresh, as if it had been working all along: a burst that comes at the
        start of a purge finds it ready to yield."""
        self._mark = now
        self._worked = self.window

    def note(self, now: float, *, working: bool) -> None:
        """Account for the time since the last note, spent working or not."""
        decay = math.exp(-(now - self._mark) / self.window)
        self._mark = now
        self._worked = self._worked * decay + (self.window * (1 - decay) if working else 0.0)

    def allowed_pause(self, floor: float) -> float:
        """The longest pause after which the share is still at least ``floor``."""
        share = self._worked / self.window
        if floor <= 0:
            return math.inf
        return 0.0 if share <= floor else self.window * math.log(share / floor)


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
        floor: float = 0.0,
        niceness: int = LOW_PRIORITY,
        activity: Callable[[], int] = lambda: 0,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.staging = staging
        self.background = background
        self.slice_seconds = slice_seconds
        self.pause_seconds = pause_seconds
        self.floor = floor
        self.niceness = niceness
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._activity = activity
        self._queue: deque[_Item] = deque()
        self._stuck: list[_Item] = []
        self._current: _Item | None = None
        self._inline: set[_Item] = set()  # purged now by request threads (not queued)
        self._freed = Freed()  # by purges that ended; those under way count apart
        self._samples: deque[tuple[float, int]] = deque()  # (when, files freed by then)
        self._share = _Share(SHARE_WINDOW)
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
        """What is left to free and what was freed; cheap (no walk), for metrics and
        readiness."""
        now = time.monotonic()
        with self._changed:
            items = [*self._queue, *self._stuck, *([self._current] if self._current else [])]
            freed = self._freed_now()
            rate = self._rate(now, freed.files)
        oldest = min((item.since for item in items), default=None)
        return TrashBacklog(
            entries=sum(item.entries for item in items),
            bytes=_known_sum(item.size for item in items),
            stuck=sum(item.entries for item in items if item.failures),
            oldest_seconds=0.0 if oldest is None else now - oldest,
            files=_known_sum(item.files_left() for item in items),
            freed=freed,
            files_per_second=rate,
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
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
        except OSError as exc:  # a sandbox that forbids it: pacing still bounds us
            log.warning("purger: cannot lower its priority: %s", exc.strerror)
        while True:
            with self._changed:
                rested = not self._due()
                while not self._due():
                    # Woken by new work, or by the clock when a stuck directory's time comes.
                    self._changed.wait(self._until_retry())
                if self._stopping.is_set():
                    return
                item = self._current = self._queue.popleft()
            try:
                self._slice_start = time.monotonic()
                if rested:
                    self._share.reset(self._slice_start)
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

        def counted() -> None:
            item.files += 1
            pace()

        try:
            with self._counting(item):
                self.staging.purge(item.txn_id, pace=counted)
                item.files = max(0, item.files - 1)  # the trash directory: not one of ours
            self._count(Freed(item.entries, 0, item.size or 0))
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
                self._count(Freed(entries=max(0, item.entries - left)))
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

    @contextmanager
    def _counting(self, item: _Item) -> Iterator[None]:
        """Count ``item``'s files as freed while it is purged, and add them to the total
        once its purge ends, however it ends."""
        item.files = 0
        with self._changed:
            self._sample(time.monotonic())
            if item is not self._current:
                self._inline.add(item)
        try:
            yield
        finally:
            with self._changed:
                self._inline.discard(item)
                self._freed = replace(self._freed, files=self._freed.files + item.files)
                item.files = 0
                self._sample(time.monotonic())

    def _count(self, freed: Freed) -> None:
        with self._changed:
            self._freed = Freed(
                self._freed.entries + freed.entries,
                self._freed.files + freed.files,
                self._freed.bytes + freed.bytes,
            )

    def _freed_now(self) -> Freed:
        """What is freed, purges under way included (the caller holds ``_changed``)."""
        under_way = [*self._inline, *([self._current] if self._current else [])]
        return replace(self._freed, files=self._freed.files + sum(i.files for i in under_way))

    def _sample(self, now: float) -> None:
        """Remember how many files were freed by ``now``, for the rate (at most every
        ``RATE_SAMPLE`` seconds, for ``RATE_WINDOW``); the caller holds ``_changed``."""
        if self._samples and now - self._samples[-1][0] < RATE_SAMPLE:
            return
        self._samples.append((now, self._freed_now().files))
        while self._samples and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()

    def _rate(self, now: float, files: int) -> float:
        """Files freed per second over about the last ``RATE_WINDOW`` seconds (the caller
        holds ``_changed``); 0 when nothing was freed in that time."""
        recent = [(when, count) for when, count in self._samples if now - when <= RATE_WINDOW]
        if not recent:
            return 0.0
        since, count = recent[0]
        return (files - count) / max(now - since, RATE_SAMPLE)

    def _pace(self) -> None:
        """Called after each entry removed: yield to requests (down to the floor), or stop."""
        self._ticks += 1
        if self._ticks % _CLOCK_EVERY:
            return
        if self._stopping.is_set():
            raise _Stopped
        now = time.monotonic()
        with self._changed:
            self._sample(now)
        if now - self._slice_start < self.slice_seconds:
            return
        self._share.note(now, working=True)
        activity = self._activity()
        if activity != self._seen_activity:
            self._seen_activity = activity
            pause = min(self.pause_seconds, self._share.allowed_pause(self.floor))
            if pause > 0 and self._stopping.wait(pause):
                raise _Stopped
            now = time.monotonic()
            self._share.note(now, working=False)
        self._slice_start = now


def _known_sum(values: Iterable[int | None]) -> int | None:
    """The sum of ``values``; None if any is unknown."""
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total
