"""What a run left behind: sockets this process still holds to experiment servers.

Used at the end of a test session (root ``conftest.py``), as Go's net/http
tests check for leaked connections after every test.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Collection

import psutil

from .states import HELD_STATES, SYN_SENT

HELD = (*HELD_STATES, SYN_SENT)  # a connect still under way is held too


def held_sockets(servers: Collection[tuple[str, int]]) -> list:
    """This process's TCP sockets whose remote end is one of ``servers`` ((host, port):
    the address too, as servers on 127.0.0.2 and 127.0.0.3 may share a port number)
    and that it still holds."""
    return [c for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and (c.raddr.ip, c.raddr.port) in servers and c.status in HELD]


def settle(servers: Collection[tuple[str, int]], deadline_s: float = 3.0, every_s: float = 0.1) -> list:
    """``held_sockets`` polled until none are left or the deadline (a client thread
    released by its server's stop closes its socket a moment later); returns what
    is still held."""
    end = time.monotonic() + deadline_s
    pause = threading.Event()
    left = held_sockets(servers)
    while left and time.monotonic() < end:
        pause.wait(every_s)
        left = held_sockets(servers)
    return left


def describe(sockets: list) -> str:
    return "\n".join(f"  {c.laddr.ip}:{c.laddr.port} -> {c.raddr.ip}:{c.raddr.port} {c.status}" for c in sockets)
