"""Count the TCP sockets to one experiment server, by state.

Client-side sockets are those whose *remote* address is the server's host:port;
TIME_WAIT sockets belong to no process, so they are attributed by port alone.
Every experiment has its own server, hence its own port, so experiments never
count each other's sockets.

Two backends read the socket table:

* ``netlink`` (Linux): the kernel's sock_diag, filtered by port in the kernel
  (``harness.sock_diag``); ~0.3 ms a sample with 100 sockets to the server,
  ~20 ms with 10k, whatever else is on the machine.
* ``psutil`` (portable): ``psutil.net_connections()``, ~12 ms with 100 sockets
  on the machine and ~400 ms with 10k (it maps every socket to a process).

``auto`` (the default) takes netlink where it answers, psutil elsewhere.
"""
from __future__ import annotations

import collections
import operator
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import psutil

from . import sock_diag

ESTABLISHED = psutil.CONN_ESTABLISHED
TIME_WAIT = psutil.CONN_TIME_WAIT
CLOSE_WAIT = psutil.CONN_CLOSE_WAIT


class ClientSocket(NamedTuple):
    """One client-side socket to the server: its local port and TCP state."""

    local_port: int
    state: str


class _Sockets(tuple):
    """(local port, state) pairs, read as ClientSocket: made only when looked at."""

    def __iter__(self):
        return map(ClientSocket._make, tuple.__iter__(self))

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return ClientSocket._make(item) if isinstance(index, int) else _Sockets(item)


@dataclass(frozen=True)
class Snapshot:
    """Socket counts to one server at one moment."""

    established: int
    time_wait: int
    close_wait: int
    other: int
    server_established: int | None  # None unless the counter counts the server's side
    sockets: tuple[ClientSocket, ...]


BACKENDS = ("auto", "netlink", "psutil")


def _addresses(host: str) -> frozenset[str | bytes]:
    """Every form a backend may show for ``host``: psutil's text and sock_diag's
    packed bytes, IPv4-mapped IPv6 included."""
    ips = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    forms: set[str | bytes] = set(ips)
    for ip in ips:
        if ":" in ip:
            forms.add(socket.inet_pton(socket.AF_INET6, ip))
        else:
            packed = socket.inet_pton(socket.AF_INET, ip)
            forms |= {"::ffff:" + ip, packed, b"\0" * 10 + b"\xff\xff" + packed}
    return frozenset(forms)


def choose_backend(name: str = "auto") -> str:
    """``auto`` -> ``netlink`` where sock_diag answers, else ``psutil``; raises ValueError
    for an unknown name and SockDiagUnavailable when netlink is asked for and absent."""
    if name not in BACKENDS:
        raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "netlink" if sock_diag.available() else "psutil"
    if name == "netlink" and not sock_diag.available():
        raise sock_diag.SockDiagUnavailable(0, "the netlink sampler needs Linux sock_diag, which does not answer here")
    return name


def psutil_rows() -> list[tuple[str, str, int, str, int]]:
    """(state, local ip, local port, remote ip, remote port) of every TCP socket, by psutil."""
    rows = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.raddr:
            rows.append((conn.status, conn.laddr.ip, conn.laddr.port, conn.raddr.ip, conn.raddr.port))
    return rows


class SocketCounter:
    """Counts sockets to ``host:port``, leaving out the harness's own.

    ``own_ports`` is read live: local ports the harness used for its own calls
    (e.g. ``/stats``) are left out of the client-side counts and their peers out
    of the server-side count. The server's side (``server_established``) is
    counted only with ``server_side=True``: it doubles the sockets read, and on
    loopback it mirrors the client's side.
    """

    def __init__(self, host: str, port: int, own_ports: Collection[int] = (), backend: str = "auto",
                 server_side: bool = False) -> None:
        self.host = host
        self.port = port
        self.addresses = _addresses(host)
        self.ip = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
        self.own_ports = own_ports
        self.backend = choose_backend(backend)
        self.server_side = server_side
        self._stale_time_wait: set[int] = set()

    def ignore_existing_time_wait(self) -> int:
        """Leave out TIME_WAIT sockets that predate the experiment; returns how many.

        A new server can be given a port whose previous owner's TIME_WAIT
        sockets still linger (they last 60 s).
        """
        self._stale_time_wait = {
            s.local_port for s in self.snapshot().sockets if s.state == TIME_WAIT
        }
        return len(self._stale_time_wait)

    def _sides(self, rows: Iterable[tuple] | None) -> tuple[list[tuple[int, str]], list[tuple[str, int]]]:
        """([(local port, state)] of client sockets, [(state, remote port)] of server ones)."""
        if rows is None and self.backend == "netlink":
            return sock_diag.tcp_sockets(self.ip, self.port, self.server_side)
        port, addresses = self.port, self.addresses
        client, server = [], []
        for status, local_ip, local_port, remote_ip, remote_port in psutil_rows() if rows is None else rows:
            if local_port == port and local_ip in addresses:
                server.append((status, remote_port))
            elif remote_port == port and remote_ip in addresses:
                client.append((local_port, status))
        return client, server

    def snapshot(self, rows: Iterable[tuple] | None = None) -> Snapshot:
        """Count now; or count in ``rows`` (``psutil_rows()``), one scan shared by
        several counters. Costs ~1 us a socket to the server beyond the scan."""
        client, server = self._sides(rows)
        own_ports, stale = self.own_ports, self._stale_time_wait
        if own_ports or stale:
            client = [(local, state) for local, state in client
                      if local not in own_ports and not (state == TIME_WAIT and local in stale)]
        counts = collections.Counter(map(operator.itemgetter(1), client))
        established, time_wait, close_wait = counts[ESTABLISHED], counts[TIME_WAIT], counts[CLOSE_WAIT]
        server_established = None
        if self.server_side:
            server_established = sum(1 for status, remote in server if status == ESTABLISHED and remote not in own_ports)
        client.sort()
        return Snapshot(established, time_wait, close_wait, len(client) - established - time_wait - close_wait,
                        server_established, _Sockets(client))


class HostsCounter:
    """Several SocketCounters (one per server) counted from one scan.

    ``snapshot()`` returns the sums, as one SocketCounter would; ``last_by_host``
    holds each server's own Snapshot from the same scan, in the counters' order.
    """

    def __init__(self, counters: Sequence[SocketCounter]) -> None:
        self.counters = list(counters)
        self.last_by_host: tuple[Snapshot, ...] = ()

    def ignore_existing_time_wait(self) -> int:
        return sum(c.ignore_existing_time_wait() for c in self.counters)

    def snapshot(self) -> Snapshot:
        # psutil reads the whole table: once for all; netlink reads one port, cheaply: once each
        shared = psutil_rows() if any(c.backend == "psutil" for c in self.counters) else None
        by_host = tuple(c.snapshot(shared if c.backend == "psutil" else None) for c in self.counters)
        self.last_by_host = by_host
        return Snapshot(
            established=sum(s.established for s in by_host), time_wait=sum(s.time_wait for s in by_host),
            close_wait=sum(s.close_wait for s in by_host), other=sum(s.other for s in by_host),
            server_established=None if any(s.server_established is None for s in by_host)
            else sum(s.server_established or 0 for s in by_host),
            sockets=tuple(sock for s in by_host for sock in s.sockets),
        )


@dataclass(frozen=True)
class Sample:
    """One row of the time series. ``t`` in seconds since the recorder started."""

    t: float
    round: int
    cycle: int
    in_flight: int
    in_flight_peak: int
    established: int
    time_wait: int
    close_wait: int
    other: int
    server_established: int | None
    label: str = ""
    held_by_host: tuple[int, ...] = ()  # ESTABLISHED + CLOSE_WAIT per server, when there are several

    @property
    def held(self) -> int:
        """Client sockets not yet closed by the client: ESTABLISHED + CLOSE_WAIT.

        A CLOSE_WAIT socket was closed by the server but its file descriptor is
        still open in the client: it is held as surely as an ESTABLISHED one.
        """
        return self.established + self.close_wait

    def as_dict(self) -> dict:
        return asdict(self)


class SeriesRecorder:
    """Samples a SocketCounter every ``interval`` s in a thread, and on demand.

    ``in_flight_window`` is called around each snapshot: it must return the most
    requests that were in flight at any moment since its previous call, so that a
    sample's ``in_flight_peak`` covers the whole time the scan took.
    """

    def __init__(
        self,
        counter: SocketCounter | HostsCounter,
        interval: float,
        in_flight_window: Callable[[], tuple[int, int]],
        position: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self.counter = counter
        self.interval = interval
        self.in_flight_window = in_flight_window
        self.position = position
        self.samples: list[Sample] = []
        self.last: Snapshot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pending_label = ""
        self._thread: threading.Thread | None = None
        self.t0 = time.monotonic()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="socket-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            label, self._pending_label = self._pending_label, ""
            self.sample(label)
            self._wake.wait(self.interval)

    def request(self, label: str) -> None:
        """Ask the sampling thread for a sample now, labelled; returns at once.

        Used at cycle ends so that a slow scan (hundreds of ms with thousands of
        sockets on the machine) never delays the schedule. Requests made while a
        scan runs are merged into the next sample.
        """
        self._pending_label = label
        self._wake.set()

    def sample(self, label: str = "") -> Sample:
        """Take one sample now (thread-safe); returns it."""
        with self._lock:
            self.in_flight_window()  # open a fresh window
            snap = self.counter.snapshot()
            current, peak = self.in_flight_window()
            rnd, cycle = self.position()
            sample = Sample(
                t=round(time.monotonic() - self.t0, 4), round=rnd, cycle=cycle,
                in_flight=current, in_flight_peak=peak,
                established=snap.established, time_wait=snap.time_wait, close_wait=snap.close_wait,
                other=snap.other, server_established=snap.server_established, label=label,
                held_by_host=tuple(s.established + s.close_wait for s in getattr(self.counter, "last_by_host", ())),
            )
            self.samples.append(sample)
            self.last = snap
            return sample

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
