"""Count the TCP sockets to one experiment server, by state.

Client-side sockets are those whose *remote* address is the server's host:port;
TIME_WAIT sockets belong to no process, so they are attributed by port alone.
Every experiment has its own server, hence its own port, so experiments never
count each other's sockets. Which backend reads the table: ``backends.py``.
"""
from __future__ import annotations

import collections
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .backends import AUTO, Backend, ClientSide, SocketInfo, Target, choose_backend
from .states import CLOSE_WAIT, ESTABLISHED, HELD_STATES, TIME_WAIT, TOWARD_TIME_WAIT


class ClientSocket(NamedTuple):
    """One client-side socket to the server: its local port and TCP state."""

    local_port: int
    state: str


class _Sockets(Sequence):
    """A scan's client-side sockets as ClientSocket (local port, state), in port order,
    sorted only when first looked at: at 10,000 sockets the sort is 2.6 ms, most of a
    sample's Python, and most samples are only counted. Equal to any sequence of the
    same pairs in the same order (a tuple of them included)."""

    __slots__ = ("_rows", "_pairs")

    def __init__(self, rows: Sequence[tuple]) -> None:
        self._rows: Sequence[tuple] | None = rows  # (local port, state, ...) as scanned, in no order
        self._pairs: tuple[tuple[int, str], ...] | None = None

    def _sorted(self) -> tuple[tuple[int, str], ...]:
        # safe across threads without a lock: _pairs is set before _rows is dropped
        pairs = self._pairs
        if pairs is None:
            rows = self._rows
            if rows is None:  # another thread sorted them meanwhile
                return self._pairs
            pairs = self._pairs = tuple(sorted((row[0], row[1]) for row in rows))
            self._rows = None
        return pairs

    def __len__(self) -> int:
        rows = self._rows
        return len(rows) if rows is not None else len(self._pairs)

    def __iter__(self):
        return map(ClientSocket._make, self._sorted())

    def __getitem__(self, index):
        item = self._sorted()[index]
        return ClientSocket._make(item) if isinstance(index, int) else tuple(map(ClientSocket._make, item))

    def __contains__(self, item) -> bool:
        return tuple(item) in self._sorted() if isinstance(item, tuple) and len(item) == 2 else False

    def __eq__(self, other) -> bool:
        if isinstance(other, _Sockets):
            return self._sorted() == other._sorted()
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and self._sorted() == tuple(tuple(item) for item in other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._sorted())

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self):
        return _Sockets, (self._sorted(),)


@dataclass(frozen=True)
class Snapshot:
    """Socket counts to one server at one moment."""

    established: int
    time_wait: int
    close_wait: int
    other: int
    server_established: int | None  # None unless the counter counts the server's side
    sockets: tuple[ClientSocket, ...]
    # local ports of held sockets with bytes the client has not read yet (an answer that
    # arrived); None where the backend cannot read receive queues. Not compared: it is a
    # moment's state that two backends, or two scans, see differently
    unread: frozenset[int] | None = field(default=None, compare=False)

    @property
    def held(self) -> int:
        """ESTABLISHED + CLOSE_WAIT: sockets the client has not closed."""
        return self.established + self.close_wait


class SocketCounter:
    """Counts sockets to ``host:port``, leaving out the harness's own.

    ``own_ports`` is read live: local ports the harness used for its own calls
    (e.g. ``/stats``) are left out of the client-side counts and their peers out
    of the server-side count. The server's side (``server_established``) is
    counted only with ``server_side=True``: it doubles the sockets read, and on
    loopback it mirrors the client's side. ``backend`` is a name
    (``harness.sampling.backends``) or a Backend.
    """

    def __init__(self, host: str, port: int, own_ports: Collection[int] = (), backend: str | Backend = AUTO,
                 server_side: bool = False) -> None:
        self.host = host
        self.port = port
        self.target = Target.of(host, port, server_side)
        self.own_ports = own_ports
        self.backend = backend if isinstance(backend, Backend) else choose_backend(backend)
        self.server_side = server_side
        self._stale_time_wait: set[int] = set()

    def ignore_existing_time_wait(self) -> int:
        """Leave out TIME_WAIT sockets that predate the experiment; returns how many.

        A new server can be given a port whose previous owner's TIME_WAIT
        sockets still linger (they last 60 s). Sockets already closed and on their
        way there (FIN_WAIT1/2, CLOSING: a loaded server had not closed its side
        yet) are left out too once they reach it. A port of theirs counts again
        once a new connection of this client is seen on it, in any other state.
        """
        self._stale_time_wait = {s.local_port for s in self.snapshot().sockets if s.state in TOWARD_TIME_WAIT}
        return len(self._stale_time_wait)

    @property
    def exact(self) -> bool:
        """True when this counter's backend reads tcp_info (so sockets can be proved abandoned)."""
        return type(self.backend).info is not Backend.info

    def info(self) -> dict[int, SocketInfo] | None:
        """{local port: SocketInfo} of the client's sockets to the server (the harness's
        own left out), from tcp_info; None where the backend cannot read it."""
        found = self.backend.info(self.target)
        if found is None:
            return None
        own = self.own_ports
        return {port: row for port, row in found.items() if port not in own}

    def snapshot(self) -> Snapshot:
        """Count now. Costs one backend scan plus ~0.1 us a socket to the server."""
        return self.count(*self.backend.scan([self.target])[0])

    def count(self, client: ClientSide, server: Sequence[tuple[str, int]]) -> Snapshot:
        """Counts from one target's scan (``Backend.scan``), the harness's own sockets left out."""
        own_ports, stale = self.own_ports, self._stale_time_wait
        if stale:
            # A stale port seen again in another state is a new connection of this client: on loopback the kernel
            # hands a lingering TIME_WAIT's local port to a new connect (tcp_tw_reuse, 2 by default: loopback only),
            # and that one's TIME_WAIT is this client's to count. (One opened and closed between two samples stays
            # unseen: left out as stale.)
            reborn = {row[0] for row in client if row[0] in stale and row[1] not in TOWARD_TIME_WAIT}
            if reborn:
                stale = self._stale_time_wait = stale - reborn
        if own_ports or stale:
            client = [row for row in client
                      if row[0] not in own_ports and not (row[1] == TIME_WAIT and row[0] in stale)]
        counts = collections.Counter(map(operator.itemgetter(1), client))
        established, time_wait, close_wait = counts[ESTABLISHED], counts[TIME_WAIT], counts[CLOSE_WAIT]
        server_established = None
        if self.server_side:
            server_established = sum(1 for status, remote in server if status == ESTABLISHED and remote not in own_ports)
        unread = None
        if self.backend.reads_queues:
            unread = frozenset(local for local, state, queued in client if queued > 0 and state in HELD_STATES)
        return Snapshot(established, time_wait, close_wait, len(client) - established - time_wait - close_wait,
                        server_established, _Sockets(client), unread)


class HostsCounter:
    """Several SocketCounters (one per server) counted from one scan per backend.

    ``snapshot()`` returns the sums, as one SocketCounter would; ``last_by_host``
    holds each server's own Snapshot from the same scan, in the counters' order.
    """

    def __init__(self, counters: Sequence[SocketCounter]) -> None:
        self.counters = list(counters)
        self.last_by_host: tuple[Snapshot, ...] = ()

    def ignore_existing_time_wait(self) -> int:
        return sum(c.ignore_existing_time_wait() for c in self.counters)

    @property
    def exact(self) -> bool:
        return all(c.exact for c in self.counters)

    def snapshot(self) -> Snapshot:
        scans: dict[int, list] = {}  # one scan of all targets per backend (psutil reads the table once for all)
        for backend in {id(c.backend): c.backend for c in self.counters}.values():
            mine = [c for c in self.counters if c.backend is backend]
            for counter, scanned in zip(mine, backend.scan([c.target for c in mine])):
                scans[id(counter)] = scanned
        by_host = tuple(c.count(*scans[id(c)]) for c in self.counters)
        self.last_by_host = by_host
        return Snapshot(
            established=sum(s.established for s in by_host), time_wait=sum(s.time_wait for s in by_host),
            close_wait=sum(s.close_wait for s in by_host), other=sum(s.other for s in by_host),
            server_established=None if any(s.server_established is None for s in by_host)
            else sum(s.server_established or 0 for s in by_host),
            sockets=tuple(sock for s in by_host for sock in s.sockets),
            unread=None if any(s.unread is None for s in by_host) else frozenset().union(*(s.unread for s in by_host)),
        )


def format_sockets(sockets: Iterable[tuple[int, str]], sites: Mapping[int, str] | None = None,
                   limit: int = 40) -> str:
    """goleak-style listing of what the client still holds (ESTABLISHED, CLOSE_WAIT),
    grouped by where each was opened (``sites``: local port -> site), most first, with
    the ports as the detail; the sockets closed by the client (TIME_WAIT, ...) summed
    by state on a last line."""
    rows = sorted(sockets, key=lambda s: (s[1], s[0]))
    held = [r for r in rows if r[1] in HELD_STATES]
    groups: dict[str, list[tuple[int, str]]] = {}
    for port, state in held:
        groups.setdefault((sites or {}).get(port, ""), []).append((port, state))
    lines = []
    shown = 0
    for where, group in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        if where:
            lines.append(f"  {len(group)} held, opened at {where}")
        indent = "    " if where else "  "
        for port, state in group[:max(0, limit - shown)]:
            lines.append(f"{indent}local port {port:<6} {state}")
        shown += min(len(group), max(0, limit - shown))
    if len(held) > shown:
        lines.append(f"  ... and {len(held) - shown} more held")
    closed: dict[str, int] = {}
    for _, state in rows:
        if state not in HELD_STATES:
            closed[state] = closed.get(state, 0) + 1
    if closed:
        lines.append("  closed by the client (churn, not held): "
                     + ", ".join(f"{n} {state}" for state, n in sorted(closed.items())))
    return "\n".join(lines)
