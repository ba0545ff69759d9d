"""Bounded waiting on a state: poll with a deadline, never a bare sleep."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def alive(process: psutil.Process | int) -> bool:
    """Whether a process (or pid) still runs: not gone, not a zombie. It may end between two
    reads of it (is_running, then status: a soak saw NoSuchProcess there), so one read, and its
    end read as an answer."""
    try:
        process = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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
