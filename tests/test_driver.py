"""The driver's bursts: a sweep's requests must be in flight together, not one thread start
after another (each waits until its thread runs: ~20 ms on a loaded machine)."""
from __future__ import annotations

import threading

import pytest

from harness.driving.driver import Driver, InFlight

BURST = 30
DEADLINE_S = 10.0  # 30 threads on a loaded 2-core machine start and end in well under a second; 10 s: stuck


def test_a_burst_starts_every_thread_before_any_request_and_counts_them_together():
    tracker, entered, seen = InFlight(), [], {}
    lock = threading.Lock()
    together = threading.Barrier(BURST, timeout=DEADLINE_S)  # passed only with all BURST requests under way at once

    def request(url: str) -> None:
        with lock:
            entered.append(url)
        together.wait()

    def ready() -> None:  # the moment the hold is set: every thread waits at the gate, none has begun
        seen.update(threads=threading.active_count(), entered=len(entered), started=tracker.started)

    before = threading.active_count()
    Driver(request, ["http://a/", "http://b/"], tracker, threading.Event()).fire_burst(BURST, BURST, ready=ready)
    assert seen == {"threads": before + BURST, "entered": 0, "started": 0}
    assert tracker.started == BURST and tracker.peak == BURST  # counted in flight together, at the gate's opening
    assert tracker.wait_idle(DEADLINE_S)
    assert tracker.failed == 0, tracker.first_error  # a broken barrier: not all were under way at once
    assert sorted(set(entered)) == ["http://a/", "http://b/"] and len(entered) == BURST


def test_a_burst_whose_ready_fails_still_lets_its_threads_go():
    tracker = InFlight()

    def ready() -> None:
        raise RuntimeError("the hold could not be set")

    with pytest.raises(RuntimeError):
        Driver(lambda url: None, "http://a/", tracker, threading.Event()).fire_burst(5, 5, ready=ready)
    assert tracker.started == 5 and tracker.wait_idle(DEADLINE_S)  # none left waiting at the gate


def test_past_its_together_part_a_burst_fires_one_after_another():
    tracker, seen = InFlight(), {}
    gate = threading.Event()

    def ready() -> None:
        seen.update(threads=threading.active_count())

    before = threading.active_count()
    Driver(lambda url: gate.wait(DEADLINE_S), "http://a/", tracker, threading.Event()).fire_burst(8, 3, ready=ready)
    assert seen == {"threads": before + 3}  # only the together part waited at the gate
    assert tracker.started == 8  # and the rest were fired after it
    gate.set()
    assert tracker.wait_idle(DEADLINE_S) and tracker.failed == 0
