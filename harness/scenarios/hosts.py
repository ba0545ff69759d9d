"""Idle caps that span several servers: the fixed client keeps at most 2 idle
connections per host and 5 in all, which one server cannot show."""
from __future__ import annotations

import threading
from collections.abc import Callable

from ..driving import Driver, ExperimentError, InFlight
from ..options import Settings
from ..sampling import SocketCounter
from ..server import ServerProcess
from .seed import WARM_UP_REQUESTS, drain_deadline


def idle_across_hosts(client: Callable[[str], object], settings: Settings, servers: list[ServerProcess],
                      per_host: int = WARM_UP_REQUESTS) -> dict[str, int]:
    """Send ``per_host`` concurrent requests to each server through ``client``,
    wait for them, and return its ESTABLISHED sockets per server URL; closes
    the client after. Costs one server delay plus a scan per server.

    Proves cross-host caps such as the fixed client's 5 idle connections in total.
    """
    tracker, stop = InFlight(), threading.Event()
    try:
        drivers = [Driver(client, server.url, tracker, stop) for server in servers]
        for driver in drivers:
            for _ in range(per_host):
                driver.fire()
        if not tracker.wait_idle(drain_deadline(settings)):
            raise ExperimentError(f"{tracker.current} requests still in flight")
        if tracker.failed:
            raise ExperimentError(f"{tracker.failed} requests failed: {tracker.first_error}")
        counters = [SocketCounter(s.host, s.port, s.own_ports, settings.sampler) for s in servers]
        return {server.url: counter.snapshot().established for server, counter in zip(servers, counters)}
    finally:
        stop.set()
        close = getattr(client, "close", None)
        if callable(close):
            close()
