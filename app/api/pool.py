"""Bounded pools of threads for blocking work, stoppable at a safe point at shutdown.

Step work runs on a pool of its own (``STEPD_STEP_WORKERS`` threads) and readiness on a
small one of its own, so that neither waits behind the other, and the liveness probe,
answered on the event loop, waits behind neither. At most ``queue`` jobs wait for a
thread; past that, ``run`` raises ``Overloaded`` at once (503 ``overloaded``): a client
told to come back is better served than one left waiting behind work it cannot see.

Each job gets a ``Stop`` (``app.steps.stop``). When the request awaiting a job is
cancelled (uvicorn cancels what still runs at ``STEPD_SHUTDOWN_TIMEOUT``), a queued job
never starts (``Stopped``), and a running one is asked to stop at its next safe point and
awaited, so that its request still answers what it did. ``close`` refuses new jobs,
drops the queued ones, asks the running ones to stop, hurries them after a grace period
and tells whether every job has returned: only then may the descriptors the jobs use be
closed. The threads are daemons, so one stuck in a system call (a hung network
filesystem) cannot keep the process from exiting; its descriptors are then left open
for the kernel to close at exit, never closed under it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from app.steps.errors import Stopped
from app.steps.stop import Stop

log = logging.getLogger(__name__)

T = TypeVar("T")

# How often ``close`` looks whether every job has returned.
_POLL_SECONDS = 0.01


class Overloaded(Exception):
    """Every thread is busy and the queue is full: the work was not taken."""

    def __init__(self, pool: str) -> None:
        super().__init__(f"stepd is at capacity ({pool}): retry shortly")
        self.message = str(self)


@dataclass(eq=False)
class _Job:
    work: Callable[[Stop], Any]
    context: contextvars.Context
    future: asyncio.Future[Any]
    stop: Stop = field(default_factory=Stop)


class Pool:
    """``workers`` threads (started as needed) and at most ``queue`` jobs waiting.

    ``niceness`` lowers the threads' CPU priority (Linux applies it per thread): step
    work then yields the CPU to the event loop, which answers probes and refusals, when
    cores are scarce, and takes whatever the loop leaves (nearly all of it) otherwise.
    """

    def __init__(self, name: str, *, workers: int, queue: int, niceness: int = 0) -> None:
        self.name = name
        self.workers = workers
        self.queue = queue
        self.niceness = niceness
        self._changed = threading.Condition()
        self._waiting: deque[_Job] = deque()
        self._running: set[_Job] = set()
        self._threads = 0
        self._idle_threads = 0
        self._closed = False

    @property
    def busy(self) -> int:
        """Jobs running now."""
        return len(self._running)

    @property
    def queued(self) -> int:
        """Jobs waiting for a thread."""
        return len(self._waiting)

    async def run(self, work: Callable[[Stop], T]) -> T:
        """``work(stop)`` on a thread of the pool, in the caller's context; its result.

        Raises ``Overloaded`` when the queue is full and ``Stopped`` when the pool is
        closing. Cancelled, it stops the job at a safe point and still returns its result
        (see the module doc); cancelled again, it gives up waiting.
        """
        loop = asyncio.get_running_loop()
        job = _Job(work, contextvars.copy_context(), loop.create_future())
        self._submit(job)
        try:
            return cast(T, await asyncio.shield(job.future))
        except asyncio.CancelledError:
            if self._withdraw(job):
                uncancel()
                raise Stopped() from None
            job.stop.request()
            uncancel()
        return cast(T, await asyncio.shield(job.future))

    async def close(self, grace: float, last: float = 1.0) -> bool:
        """Take no more work, stop what runs (see the module doc); whether every job
        returned. Running jobs get ``grace`` seconds to stop at a safe point, then are
        hurried and get ``last`` seconds more."""
        with self._changed:
            self._closed = True
            dropped = list(self._waiting)
            self._waiting.clear()
            running = list(self._running)
            self._changed.notify_all()
        for job in dropped:
            _settle(job.future, None, Stopped())
        for job in running:
            job.stop.request()
        if running or dropped:
            log.warning(
                "shutdown: %s: %d jobs asked to stop at a safe point, %d queued ones dropped",
                self.name,
                len(running),
                len(dropped),
            )
        if await self._returned(grace):
            return True
        for job in running:
            job.stop.hurry()
        log.warning("shutdown: %s: %d jobs still running, hurried", self.name, self.busy)
        if await self._returned(last):
            return True
        log.error("%s: %d jobs still running after the shutdown deadlines", self.name, self.busy)
        return False

    async def _returned(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._running:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)
        return True

    def _submit(self, job: _Job) -> None:
        with self._changed:
            if self._closed:
                raise Stopped()
            if len(self._running) + len(self._waiting) >= self.workers + self.queue:
                raise Overloaded(self.name)
            self._waiting.append(job)
            if len(self._waiting) > self._idle_threads and self._threads < self.workers:
                self._threads += 1
                name = f"stepd-{self.name}-{self._threads}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
            else:
                self._changed.notify()

    def _withdraw(self, job: _Job) -> bool:
        """Take ``job`` out of the queue; False when it is already running or done."""
        with self._changed:
            try:
                self._waiting.remove(job)
            except ValueError:
                return False
            return True

    def _serve(self) -> None:
        if self.niceness:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
            except OSError as exc:  # a sandbox that forbids it: the pool's bounds still hold
                log.warning("%s: cannot lower its priority: %s", self.name, exc.strerror)
        while True:
            with self._changed:
                self._idle_threads += 1
                self._changed.wait_for(lambda: self._waiting or self._closed)
                self._idle_threads -= 1
                if not self._waiting:
                    self._threads -= 1
                    return
                job = self._waiting.popleft()
                self._running.add(job)
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.context.run(job.work, job.stop)
            except BaseException as exc:
                error = exc
            finally:
                with self._changed:
                    self._running.discard(job)
            # A closed loop (RuntimeError) means nobody waits for the answer any more.
            with suppress(RuntimeError):
                job.future.get_loop().call_soon_threadsafe(_settle, job.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def uncancel() -> None:
    """Undo the current task's cancellation: it was handled, and the task goes on."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
