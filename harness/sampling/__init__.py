"""Sampling: how many sockets a client holds to a server, read from the kernel's
socket table by a backend (netlink, psutil), one sample or a time series.

Never imports the server, the clients, the runner, the report or a face: it is
handed a host, a port and the harness's own ports, and counts.
"""
from . import netlink  # noqa: F401  (registers the netlink backend, first: auto prefers it)
from . import by_psutil  # noqa: F401  (registers the psutil backend)
from .backends import (
    AUTO,
    BACKENDS,
    Backend,
    BackendUnavailable,
    SocketInfo,
    Target,
    choose_backend,
    names,
    register,
)
from .counter import ClientSocket, HostsCounter, Snapshot, SocketCounter, format_sockets
from .recorder import Sample, SeriesRecorder
from .states import CLOSE_WAIT, ESTABLISHED, HELD_STATES, TIME_WAIT

__all__ = [
    "AUTO", "BACKENDS", "CLOSE_WAIT", "ESTABLISHED", "HELD_STATES", "TIME_WAIT",
    "Backend", "BackendUnavailable", "ClientSocket", "SocketInfo", "HostsCounter", "Sample", "SeriesRecorder", "Snapshot",
    "SocketCounter", "Target", "choose_backend", "format_sockets", "names", "register",
]
