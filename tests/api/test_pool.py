"""The pools blocking work runs on: bounded, refusing at once when full, and stopped at a
safe point at shutdown without ever leaving a job running unawares."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import dataclass

import pytest

from app.api.pool import Overloaded, Pool
from app.steps.errors import Stopped
from app.steps.stop import Stop

pytestmark = pytest.mark.anyio

# Bounds that only keep a broken test from hanging.
HANG = 10.0

current = contextvars.ContextVar("current", default="none")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Blocker:
    """Work that runs until released (or until its stop is requested, if ``obeys``)."""

    def __init__(self, *, obeys: bool = True, urgent_only: bool = False) -> None:
        self.started = threading.Event()
        self.released = threading.Event()
        self.obeys = obeys
        self.urgent_only = urgent_only
        self.stops: list[Stop] = []

    def __call__(self, stop: Stop) -> str:
        self.stops.append(stop)
        self.started.set()
        while not self.released.wait(0.005):
            if self.obeys and (stop.urgent if self.urgent_only else stop.requested):
                return "stopped"
        return "released"

    async def running(self) -> None:
        assert await asyncio.to_thread(self.started.wait, HANG)


@dataclass
class Busy:
    """A pool of one thread: ``running`` holds it, ``queued`` waits (and appends to
    ``ran`` if it ever runs)."""

    blocker: Blocker
    running: asyncio.Task[str]
    queued: asyncio.Task[None]
    ran: list[str]


async def one_running_one_queued(pool: Pool) -> Busy:
    blocker = Blocker()
    ran: list[str] = []
    running = asyncio.create_task(pool.run(blocker))
    await blocker.running()
    queued = asyncio.create_task(pool.run(lambda stop: ran.append("queued")))
    await asyncio.sleep(0)
    assert (pool.busy, pool.queued) == (1, 1)
    return Busy(blocker, running, queued, ran)


async def test_work_runs_on_a_pool_thread_in_the_callers_context() -> None:
    pool = Pool("test", workers=2, queue=0)
    current.set("request-1")

    def work(stop: Stop) -> tuple[str, str]:
        return threading.current_thread().name, current.get()

    name, seen = await pool.run(work)
    assert name.startswith("stepd-test-")
    assert seen == "request-1"
    assert await pool.close(grace=HANG)


async def test_the_works_exception_is_raised_to_the_caller() -> None:
    pool = Pool("test", workers=1, queue=0)

    def fails(stop: Stop) -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await pool.run(fails)
    assert await pool.close(grace=HANG)


async def test_past_the_queue_bound_work_is_refused_at_once() -> None:
    pool = Pool("test", workers=1, queue=1)
    busy = await one_running_one_queued(pool)
    with pytest.raises(Overloaded, match="at capacity"):
        await pool.run(lambda stop: "refused")
    busy.blocker.released.set()
    assert await busy.running == "released"
    await busy.queued
    assert busy.ran == ["queued"]
    assert await pool.close(grace=HANG)


async def test_no_more_threads_than_workers() -> None:
    pool = Pool("test", workers=3, queue=10)
    names: set[str] = set()
    lock = threading.Lock()

    def work(stop: Stop) -> None:
        with lock:
            names.add(threading.current_thread().name)

    await asyncio.gather(*(pool.run(work) for _ in range(12)))
    assert 1 <= len(names) <= 3
    assert await pool.close(grace=HANG)


async def test_close_drops_queued_work_and_stops_running_work_at_a_safe_point() -> None:
    pool = Pool("test", workers=1, queue=1)
    busy = await one_running_one_queued(pool)
    assert await pool.close(grace=HANG)
    assert await busy.running == "stopped"
    assert busy.blocker.stops[0].requested
    assert not busy.blocker.stops[0].urgent
    with pytest.raises(Stopped):
        await busy.queued
    assert busy.ran == []
    with pytest.raises(Stopped):
        await pool.run(lambda stop: None)


async def test_work_that_only_heeds_an_urgent_stop_is_hurried_after_the_grace() -> None:
    pool = Pool("test", workers=1, queue=0)
    blocker = Blocker(urgent_only=True)
    running = asyncio.create_task(pool.run(blocker))
    await blocker.running()
    assert await pool.close(grace=0.05)
    assert blocker.stops[0].urgent
    assert await running == "stopped"


async def test_close_says_so_when_work_does_not_return(caplog: pytest.LogCaptureFixture) -> None:
    pool = Pool("test", workers=1, queue=0)
    blocker = Blocker(obeys=False)
    running = asyncio.create_task(pool.run(blocker))
    await blocker.running()
    assert not await pool.close(grace=0.02, last=0.02)
    assert "1 jobs still running after the shutdown deadlines" in caplog.text
    assert pool.busy == 1
    blocker.released.set()
    assert await running == "released"
    assert pool.busy == 0


async def test_a_cancelled_caller_still_gets_the_result_of_work_stopped_at_a_safe_point() -> None:
    pool = Pool("test", workers=1, queue=0)
    blocker = Blocker()
    caller = asyncio.create_task(pool.run(blocker))
    await blocker.running()
    caller.cancel()
    assert await caller == "stopped"
    assert not caller.cancelled()
    assert blocker.stops[0].requested
    assert await pool.close(grace=HANG)


async def test_a_cancelled_caller_of_queued_work_gets_stopped_and_the_work_never_runs() -> None:
    pool = Pool("test", workers=1, queue=1)
    busy = await one_running_one_queued(pool)
    busy.queued.cancel()
    with pytest.raises(Stopped):
        await busy.queued
    assert pool.queued == 0
    busy.blocker.released.set()
    assert await busy.running == "released"
    assert await pool.close(grace=HANG)
    assert busy.ran == []


async def test_cancelled_twice_the_caller_gives_up_waiting() -> None:
    pool = Pool("test", workers=1, queue=0)
    blocker = Blocker(obeys=False)
    caller = asyncio.create_task(pool.run(blocker))
    await blocker.running()
    caller.cancel()
    await asyncio.sleep(0.02)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    blocker.released.set()
    assert await pool.close(grace=HANG)


async def test_pool_threads_are_daemons() -> None:
    # A thread stuck in a system call must not keep the process from exiting.
    pool = Pool("test", workers=1, queue=0)
    assert await pool.run(lambda stop: threading.current_thread().daemon)
    assert await pool.close(grace=HANG)
