"""Bounded waiting on a state: poll with a deadline, never a bare sleep."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], accept: Callable[[T], bool], deadline_s: float = 5.0, every_s: float = 0.01) -> T:
    """Call ``probe`` until ``accept(value)``; return the value, or fail with the last one."""
    end = time.monotonic() + deadline_s
    pause = threading.Event()
    value = probe()
    while not accept(value):
        if time.monotonic() >= end:
            raise AssertionError(f"still {value!r} after {deadline_s} s")
        pause.wait(every_s)
        value = probe()
    return value
