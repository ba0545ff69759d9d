"""Drive a client through a schedule: one thread per request, as goroutines (for an
``async def`` client, one task per request on its own loop).

The harness knows at every moment how many of the client's requests are in
flight (``InFlight``), which is what lets a verdict tell a pool from a leak.
"""
from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Sequence

from .schedule import Schedule

RequestFn = Callable[[str], object]
StartFn = Callable[[str, Callable[[BaseException | None], object]], object]


class InFlight:
    """Thread-safe count of requests in flight, with peaks and failures."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.current = 0
        self.peak = 0
        self._window_peak = 0
        self.started = 0
        self.finished = 0
        self.failed = 0
        self.idle_since = time.monotonic()  # when the count last fell to 0 (monotonic s)
        self.burst_first_end: float | None = None  # first end since the count last rose from 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.first_error: str | None = None

    def begin(self) -> None:
        with self._cond:
            if self.current == 0:
                self.burst_first_end = None
            self.current += 1
            self.started += 1
            self.peak = max(self.peak, self.current)
            self._window_peak = max(self._window_peak, self.current)

    def end(self, error: BaseException | None = None) -> None:
        with self._cond:
            self.current -= 1
            self.finished += 1
            if self.burst_first_end is None:
                self.burst_first_end = time.monotonic()
            if error is not None:
                self.failed += 1
                name = type(error).__name__
                self.errors[name] += 1
                if self.first_error is None:
                    self.first_error = f"{name}: {error}"
            if self.current == 0:
                self.idle_since = time.monotonic()
                self._cond.notify_all()

    def window(self) -> tuple[int, int]:
        """(current, most in flight since the previous call); starts a new window."""
        with self._cond:
            result = (self.current, self._window_peak)
            self._window_peak = self.current
            return result

    def wait_drained(self, stall_s: float, most_s: float, watch: Callable[[], None], every_s: float) -> bool:
        """Block until no request is in flight (True), or until none has finished for ``stall_s``
        seconds or ``most_s`` have passed in all (False); ``watch`` is called every ``every_s``
        seconds meanwhile (it may raise to end the wait)."""
        start = time.monotonic()
        finished, moved = self.finished, start
        while True:
            now = time.monotonic()
            if self.finished != finished:
                finished, moved = self.finished, now
            left = min(moved + stall_s, start + most_s) - now
            if self.wait_idle(min(every_s, max(0.0, left))):
                return True
            watch()
            if left <= 0:
                return False

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is in flight, at most ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: self.current == 0, timeout=timeout)


class Driver:
    """Runs schedules of requests to ``url`` with a client's request function.

    Given several URLs, requests that name none go to each in turn.
    """

    def __init__(self, request: RequestFn, url: str | Sequence[str], tracker: InFlight, stop: threading.Event) -> None:
        self.request = request
        # a client that starts a request itself and reports its end: ``start_request(url, done)``, then ``done(error)``
        self._start: StartFn | None = getattr(request, "start_request", None)
        self.urls = [url] if isinstance(url, str) else list(url)
        self.url = self.urls[0]
        self._next_url = itertools.cycle(self.urls)
        self.tracker = tracker
        self.stop = stop
        self.round = 0
        self.cycle = 0

    def position(self) -> tuple[int, int]:
        return self.round, self.cycle

    def fire(self, url: str | None = None) -> None:
        """Start one request, in a thread of its own or, for a client that starts its own
        (an async target: a task on its loop), by it; it counts as in flight at once."""
        url = url or next(self._next_url)
        self.tracker.begin()
        try:
            if self._start is not None:
                self._start(url, self.tracker.end)
            else:
                threading.Thread(target=self._one, args=(url,), daemon=True).start()
        except BaseException as exc:
            self.tracker.end(exc)
            raise

    def burst(self, n: int) -> Burst:
        """``n`` requests made ready to go at once (``Burst.go``). In threads, each is started
        now and waits on a gate: a thread's start waits for its first turn of the GIL, up
        to the 5 ms switch interval while other threads run requests, and a loaded soak
        once spent 0.3 s starting 31 of them, past a sweep's barrier window. A client that
        starts its own requests (an async one) is fired at ``go``, as ``fire`` does."""
        return Burst(self, [next(self._next_url) for _ in range(n)])

    def _one(self, url: str) -> None:
        error: BaseException | None = None
        try:
            self.request(url)
        except BaseException as exc:  # noqa: BLE001  a failed request is data, not a crash of the harness: a
            error = exc                # target's SystemExit or KeyboardInterrupt ends its own request, nothing else
        finally:
            self.tracker.end(error)

    def replay(self, schedule: Schedule, round_no: int, on_cycle_end: Callable[[], object] = lambda: None) -> int:
        """Send one round of the schedule; returns the requests sent.

        Cycle starts are absolute (t0 + i * period) so sampling does not make the
        schedule drift. ``on_cycle_end`` runs when each cycle's period is over,
        just before the next cycle fires. Does not wait for the requests to finish.
        """
        self.round = round_no
        t0 = time.monotonic()
        sent = 0
        for cycle in range(schedule.cycles + 1):
            wait = t0 + cycle * schedule.period - time.monotonic()
            # behind schedule (a loaded machine) it still looks: a dead server's round once fired on for 9.9 s
            if self.stop.wait(wait) if wait > 0 else self.stop.is_set():
                break
            if cycle:
                on_cycle_end()
            if cycle == schedule.cycles:
                break
            self.cycle = cycle + 1
            for _ in range(schedule.requests_in_cycle(cycle)):
                self.fire()
                sent += 1
        return sent


class Burst:
    """Requests ready to go at once (``Driver.burst``): ``go()`` sends them, counting each in
    flight as it goes; ``cancel()`` lets threads that never went end without a request.
    Use ``with``: leaving the block cancels what did not go."""

    def __init__(self, driver: Driver, urls: list[str]) -> None:
        self.driver = driver
        self.urls = urls
        self._gate = threading.Event()
        self._went = False
        if driver._start is None:
            for url in urls:
                threading.Thread(target=self._wait_then_request, args=(url,), daemon=True).start()

    def _wait_then_request(self, url: str) -> None:
        self._gate.wait()
        if self._went:
            self.driver._one(url)

    def go(self) -> None:
        """Send every request: each counts in flight at once, then the gate opens."""
        if self._went or self._gate.is_set():
            raise RuntimeError("a burst goes once")
        if self.driver._start is not None:
            self._went = True
            for url in self.urls:
                self.driver.fire(url)
            return
        for _ in self.urls:
            self.driver.tracker.begin()
        self._went = True
        self._gate.set()

    def cancel(self) -> None:
        """Threads that never went end without a request; nothing once it went."""
        self._gate.set()

    def __enter__(self) -> Burst:
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()
