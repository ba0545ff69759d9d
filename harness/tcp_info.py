"""What the harness reads of the kernel's ``struct tcp_info`` (linux/tcp.h): one home for its
layout, read from sock_diag's dumps (``sampling/netlink.py``) and from a socket's own
``getsockopt(TCP_INFO)`` (the slow server's arrival times, ``server/protocol.py``)."""
from __future__ import annotations

import struct
import time

LAST_DATA_RECV_AT = 52  # tcpi_last_data_recv: ms since the socket last received data, counted in the kernel's ticks
LAST_DATA_RECV = struct.Struct("=I")
BYTES_RECEIVED_AT = 128  # tcpi_bytes_received: bytes received in all (Linux 4.1+)
BYTES_RECEIVED = struct.Struct("=Q")
# CLOCK_MONOTONIC_COARSE (linux/time.h; Python names it not): it ticks once a jiffy, so its resolution is the tick
# that tcpi_last_data_recv counts in (4 ms at HZ=250)
CLOCK_MONOTONIC_COARSE = 6
COARSEST_TICK_S = 0.01  # HZ=100, the fewest ticks a second Linux is built with


def tick_s() -> float:
    """The kernel's tick (s): the granularity of tcpi_last_data_recv; COARSEST_TICK_S where it cannot be read."""
    try:
        tick = time.clock_getres(CLOCK_MONOTONIC_COARSE)
    except (OSError, AttributeError):  # not Linux
        return COARSEST_TICK_S
    return tick if 0 < tick <= COARSEST_TICK_S else COARSEST_TICK_S
