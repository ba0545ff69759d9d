"""The driver: requests in flight counted from fire to end, a thread per plain request,
a task on its own loop per async one. No server: the request functions wait on events."""
from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

from harness.clients import AsyncTarget
from harness.driving.driver import Driver, InFlight
from harness.driving.schedule import make_schedule

from .waiting import wait_for

BURST = 50
WAIT_S = 10.0  # a deadline only: each wait below ends in milliseconds unless the behaviour broke


class AsyncGate:
    """An ``async def`` request that waits until released; counts those waiting."""

    def __init__(self, burst: int, fail: bool = False) -> None:
        self.burst = burst
        self.fail = fail
        self.waiting = 0
        self.all_waiting = threading.Event()
        self.release: asyncio.Event | None = None

    async def __call__(self, url: str) -> str:
        if self.release is None:
            self.release = asyncio.Event()  # made on the target's loop, where it is awaited
        self.waiting += 1
        if self.waiting == self.burst:
            self.all_waiting.set()
        await self.release.wait()
        if self.fail:
            raise ConnectionResetError(f"refused {url}")
        return url


def _driver(request) -> tuple[Driver, InFlight]:
    tracker = InFlight()
    return Driver(request, "http://127.0.0.1:9/", tracker, threading.Event()), tracker


def test_an_async_targets_burst_runs_as_tasks_on_its_loop_not_as_threads():
    gate = AsyncGate(BURST)
    target = AsyncTarget(gate)
    try:
        driver, tracker = _driver(target)
        threads_before = threading.active_count()
        for _ in range(BURST):
            driver.fire()
        assert gate.all_waiting.wait(WAIT_S), f"only {gate.waiting} of {BURST} requests started on the loop"
        # tolerance 0: every request is a task on the target's one loop thread, already running
        assert threading.active_count() == threads_before
        assert (tracker.current, tracker.peak) == (BURST, BURST)
        target.loop.call_soon_threadsafe(gate.release.set)
        assert tracker.wait_idle(WAIT_S)
        assert (tracker.started, tracker.finished, tracker.failed) == (BURST, BURST, 0)
    finally:
        target.close()


def test_an_async_burst_starts_a_request_a_turn_of_the_loop_so_the_first_is_sent_before_the_last_starts():
    """All started at once, a burst advances in step (every request connects before any is
    sent): on a loaded machine its first requests then reached the server 0.5 s late."""
    events: list[str] = []
    all_sent = threading.Event()

    async def request(url: str) -> None:
        events.append("start")
        for _ in range(3):  # a connect's turns of the loop: the socket, the handshake, the transport
            await asyncio.sleep(0)
        events.append("sent")
        if events.count("sent") == BURST:
            all_sent.set()

    target = AsyncTarget(request)
    try:
        driver, tracker = _driver(target)
        driver.fire()  # one before the burst: the loop has run its feeder, now waiting on its queue
        assert tracker.wait_idle(WAIT_S)
        events.clear()
        blocked, go_on = threading.Event(), threading.Event()
        # the whole burst queued while the loop is busy, as when a loaded machine starves its thread
        target.loop.call_soon_threadsafe(lambda: (blocked.set(), go_on.wait(WAIT_S)))
        assert blocked.wait(WAIT_S)
        for _ in range(BURST):
            driver.fire()
        go_on.set()
        assert all_sent.wait(WAIT_S)
        # one start a turn: the first is sent on its 4th turn, after 4 starts (all at once: after all 50);
        # 10 leaves room for the turns the feeder's queue may take to hand over
        assert events.index("sent") < 10, events[:20]
        assert tracker.wait_idle(WAIT_S)
    finally:
        target.close()


def test_an_async_request_waiting_on_what_nothing_else_holds_is_kept_until_it_ends():
    """A task waiting on a future only it refers to (as ``asyncio.open_connection`` does while
    it connects) is held by nothing but that future: the loop keeps its tasks weakly."""
    waiting: weakref.WeakSet[asyncio.Future] = weakref.WeakSet()
    all_waiting = threading.Event()

    async def request(url: str) -> str:
        future = asyncio.get_running_loop().create_future()
        waiting.add(future)
        if len(waiting) == 3:
            all_waiting.set()
        return await future

    target = AsyncTarget(request)
    try:
        driver, tracker = _driver(target)
        for _ in range(3):
            driver.fire()
        assert all_waiting.wait(WAIT_S)
        gc.collect()  # what would destroy a task nobody holds ("Task was destroyed but it is pending!")
        assert len(waiting) == 3, "the waiting requests' tasks were collected"
        target.loop.call_soon_threadsafe(lambda: [f.set_result("ok") for f in list(waiting)])
        assert tracker.wait_idle(WAIT_S)
        assert (tracker.finished, tracker.failed) == (3, 0)
    finally:
        target.close()


def test_an_async_requests_error_ends_it_as_a_failure():
    gate = AsyncGate(3, fail=True)
    target = AsyncTarget(gate)
    try:
        driver, tracker = _driver(target)
        for _ in range(3):
            driver.fire()
        assert gate.all_waiting.wait(WAIT_S)
        target.loop.call_soon_threadsafe(gate.release.set)
        assert tracker.wait_idle(WAIT_S)
        assert (tracker.finished, tracker.failed) == (3, 3)
        assert tracker.errors == {"ConnectionResetError": 3}
        assert tracker.first_error == "ConnectionResetError: refused http://127.0.0.1:9/"
    finally:
        target.close()


def test_a_plain_request_runs_in_a_thread_of_its_own():
    release, started = threading.Event(), threading.Semaphore(0)

    def request(url: str) -> None:
        started.release()
        assert release.wait(WAIT_S)

    driver, tracker = _driver(request)
    threads_before = threading.active_count()
    for _ in range(3):
        driver.fire()
    for _ in range(3):
        assert started.acquire(timeout=WAIT_S)
    assert threading.active_count() == threads_before + 3
    assert tracker.current == 3
    release.set()
    assert tracker.wait_idle(WAIT_S)
    assert (tracker.finished, tracker.failed) == (3, 0)


def test_a_burst_is_started_before_it_goes_and_goes_at_once():
    """``Driver.burst``: the threads exist before ``go`` and send nothing; ``go`` counts every request in flight
    and lets them all run; threads of a burst that never went end with no request."""
    release, started = threading.Event(), threading.Semaphore(0)
    calls = []

    def request(url: str) -> None:
        calls.append(url)
        started.release()
        assert release.wait(WAIT_S)

    driver, tracker = _driver(request)
    threads_before = threading.active_count()
    with driver.burst(BURST) as ready:
        assert threading.active_count() == threads_before + BURST  # started, waiting on the gate
        assert calls == [] and tracker.current == 0
        ready.go()
        assert tracker.current == BURST  # in flight from go, as fire counts them
    for _ in range(BURST):
        assert started.acquire(timeout=WAIT_S)
    release.set()
    assert tracker.wait_idle(WAIT_S) and (tracker.started, tracker.finished, tracker.failed) == (BURST, BURST, 0)

    wait_for(threading.active_count, lambda n: n == threads_before, WAIT_S)
    with driver.burst(BURST):
        pass  # an exception before go, say: nothing is sent and no thread is left waiting
    wait_for(threading.active_count, lambda n: n == threads_before, WAIT_S)
    assert len(calls) == BURST and tracker.started == BURST


def test_an_async_burst_goes_as_fire_does():
    gate = AsyncGate(BURST)
    target = AsyncTarget(gate)
    try:
        driver, tracker = _driver(target)
        threads_before = threading.active_count()
        with driver.burst(BURST) as ready:
            assert threading.active_count() == threads_before and tracker.current == 0  # no thread of its own
            ready.go()
        assert gate.all_waiting.wait(WAIT_S) and tracker.current == BURST
        target.loop.call_soon_threadsafe(gate.release.set)
        assert tracker.wait_idle(WAIT_S) and tracker.finished == BURST
    finally:
        target.close()


def _end_one_by_one(tracker: InFlight, gaps_s: list[float]) -> threading.Thread:
    """A thread that ends one request of ``tracker`` after each gap: requests that finish slowly."""

    def run() -> None:
        for gap in gaps_s:
            time.sleep(gap)  # the pace under test, not a synchronisation
            tracker.end()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_drain_waits_while_requests_still_finish_and_gives_up_once_they_stall_or_at_its_bound():
    watched = []
    # 6 requests ending 0.2 s apart (1.2 s in all) outlast a 0.8 s wait with none finishing (a 0.6 s margin for
    # a loaded machine's late thread), inside a bound of 10 s: waited for
    tracker = InFlight()
    for _ in range(6):
        tracker.begin()
    ender = _end_one_by_one(tracker, [0.2] * 6)
    started = time.monotonic()
    assert tracker.wait_drained(0.8, 10.0, lambda: watched.append(1), 0.1)
    assert time.monotonic() - started >= 1.0 and tracker.current == 0
    ender.join()
    assert watched  # watched meanwhile
    # one that never ends: given up 0.3 s after the last one finished
    tracker.begin()
    tracker.begin()
    ender = _end_one_by_one(tracker, [0.1])
    started = time.monotonic()
    assert not tracker.wait_drained(0.3, 10.0, lambda: None, 0.1)
    assert 0.35 <= time.monotonic() - started < 5.0 and tracker.current == 1  # 5 s: far below the 10-s bound
    ender.join()
    # still finishing, but past the bound in all
    for _ in range(8):
        tracker.begin()
    ender = _end_one_by_one(tracker, [0.1] * 8)
    started = time.monotonic()
    assert not tracker.wait_drained(5.0, 0.5, lambda: None, 0.1)  # drained only after 0.8 s
    assert 0.5 <= time.monotonic() - started < 5.0  # the bound, not the 5-s stall
    ender.join()


def test_a_round_behind_its_schedule_still_stops_when_told():
    """A round whose cycles are all overdue (period 0, as on a machine too loaded to keep up) fires
    nothing once the run is stopped, as a round on time does."""
    sent: list[str] = []
    driver, tracker = _driver(sent.append)
    driver.stop.set()
    assert driver.replay(make_schedule(400, 0.0, 3, 1), 1) == 0
    assert tracker.started == 0 and not sent
