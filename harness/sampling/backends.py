"""The sampler backend interface and its registry.

A backend reads the kernel's socket table for one or more *targets* (a server's
address and port) and returns, for each, the client-side sockets (remote end is
the server) as ``(local port, state)`` (``(local port, state, unread bytes)``
where it ``reads_queues``) and, when asked, the server-side ones as
``(state, remote port)``. States are named as psutil names them (``states.py``).

A new backend is one module that subclasses ``Backend`` and calls
``register(...)`` at import, plus one import line in ``harness.sampling``.
"""
from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

# (local port, state) of each socket whose remote end is the server; a backend that ``reads_queues`` adds a
# third item, the socket's receive queue: bytes that arrived and the client has not read yet
ClientSide = list[tuple[int, str]] | list[tuple[int, str, int]]
ServerSide = list[tuple[str, int]]  # (state, remote port) of each socket whose local end is the server


@dataclass(frozen=True)
class Target:
    """One server whose sockets are counted: ``ip`` as the kernel shows it, the
    forms of that address a backend may report (``addresses``), and its port."""

    ip: str
    port: int
    addresses: frozenset[str | bytes]
    server_side: bool = False

    @classmethod
    def of(cls, host: str, port: int, server_side: bool = False) -> Target:
        """Resolve ``host`` to every form a backend may show for it: text, packed
        bytes, IPv4-mapped IPv6 included."""
        ips = [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
        forms: set[str | bytes] = set(ips)
        for ip in ips:
            if ":" in ip:
                forms.add(socket.inet_pton(socket.AF_INET6, ip))
            else:
                packed = socket.inet_pton(socket.AF_INET, ip)
                forms |= {"::ffff:" + ip, packed, b"\0" * 10 + b"\xff\xff" + packed}
        return cls(ips[0], port, frozenset(forms), server_side)


class SocketInfo(NamedTuple):
    """What the kernel's tcp_info says of one client socket."""

    state: str
    bytes_received: int  # since the socket opened
    last_received_ms: int  # since data last arrived (ss -ti's lastrcv)


class Backend:
    """Reads sockets for targets. ``name`` is what ``--sampler`` takes."""

    name: str = ""
    summary: str = ""  # one line for --help and the docs
    reads_queues: bool = False  # True where scan() gives each client socket's unread bytes

    def available(self) -> bool:
        """True where this backend can read the socket table on this machine."""
        raise NotImplementedError

    def unavailable_reason(self) -> str:
        return f"the {self.name} sampler does not answer on this machine"

    def scan(self, targets: Sequence[Target]) -> list[tuple[ClientSide, ServerSide]]:
        """One (client side, server side) pair per target, in the targets' order."""
        raise NotImplementedError

    def info(self, target: Target) -> dict[int, SocketInfo] | None:
        """{local port: SocketInfo} of the target's client sockets, or None where this
        backend cannot read tcp_info (then no socket can be proved abandoned)."""
        return None


class BackendUnavailable(OSError):
    """The backend asked for cannot read sockets on this machine."""


BACKENDS: dict[str, Backend] = {}  # name -> backend, in the order they were registered (auto prefers the first)
AUTO = "auto"


def register(backend: Backend) -> Backend:
    """Make ``backend`` available to ``--sampler NAME`` and to ``auto`` (after those before it)."""
    if not backend.name or backend.name == AUTO:
        raise ValueError(f"a backend needs a name other than {AUTO!r}")
    BACKENDS[backend.name] = backend
    return backend


def names() -> tuple[str, ...]:
    """What ``--sampler`` accepts: auto, then every registered backend."""
    return (AUTO, *BACKENDS)


def choose_backend(name: str = AUTO) -> Backend:
    """``auto`` -> the first registered backend that answers here; a name -> that
    backend. Raises ValueError for an unknown name and BackendUnavailable when the
    one asked for does not answer."""
    if name == AUTO:
        for backend in BACKENDS.values():
            if backend.available():
                return backend
        raise BackendUnavailable(0, "no sampler backend answers on this machine")
    if name not in BACKENDS:
        raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(names())}")
    backend = BACKENDS[name]
    if not backend.available():
        raise BackendUnavailable(0, backend.unavailable_reason())
    return backend
