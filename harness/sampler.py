"""Count the TCP sockets to one experiment server, by state, with psutil.

Client-side sockets are those whose *remote* address is the server's host:port;
TIME_WAIT sockets belong to no process (psutil reports pid None), so they are
attributed by port alone. Every experiment has its own server, hence its own
port, so experiments never count each other's sockets.

Cost: one ``psutil.net_connections()`` call per sample, about 12 ms with 100
sockets on the machine and about 400 ms with 10k (it maps every socket to a
process by scanning /proc/*/fd).
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass

import psutil

ESTABLISHED = psutil.CONN_ESTABLISHED
TIME_WAIT = psutil.CONN_TIME_WAIT
CLOSE_WAIT = psutil.CONN_CLOSE_WAIT


@dataclass(frozen=True)
class ClientSocket:
    """One client-side socket to the server: its local port and TCP state."""

    local_port: int
    state: str


@dataclass(frozen=True)
class Snapshot:
    """Socket counts to one server at one moment."""

    established: int
    time_wait: int
    close_wait: int
    other: int
    server_established: int
    sockets: tuple[ClientSocket, ...]


def _addresses(host: str) -> frozenset[str]:
    """Every textual form psutil may show for ``host`` (IPv4-mapped included)."""
    ips = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    ips |= {"::ffff:" + ip for ip in ips if ":" not in ip}
    return frozenset(ips)


class SocketCounter:
    """Counts sockets to ``host:port``, leaving out the harness's own.

    ``own_ports`` is read live: local ports the harness used for its own calls
    (e.g. ``/stats``) are left out of the client-side counts and their peers out
    of the server-side count.
    """

    def __init__(self, host: str, port: int, own_ports: Collection[int] = ()) -> None:
        self.host = host
        self.port = port
        self.addresses = _addresses(host)
        self.own_ports = own_ports
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

    def snapshot(self, connections: Iterable | None = None) -> Snapshot:
        """Count now; or count in ``connections``, one ``psutil.net_connections``
        result shared by several counters (one scan for several servers)."""
        counts = {ESTABLISHED: 0, TIME_WAIT: 0, CLOSE_WAIT: 0}
        other = 0
        server_side = 0
        sockets: list[ClientSocket] = []
        for conn in psutil.net_connections(kind="tcp") if connections is None else connections:
            laddr, raddr = conn.laddr, conn.raddr
            if not raddr:
                continue
            if laddr.port == self.port and laddr.ip in self.addresses:
                if conn.status == ESTABLISHED and raddr.port not in self.own_ports:
                    server_side += 1
                continue
            if raddr.port != self.port or raddr.ip not in self.addresses or laddr.port in self.own_ports:
                continue
            if conn.status == TIME_WAIT and laddr.port in self._stale_time_wait:
                continue
            sockets.append(ClientSocket(laddr.port, conn.status))
            if conn.status in counts:
                counts[conn.status] += 1
            else:
                other += 1
        sockets.sort(key=lambda s: (s.state, s.local_port))
        return Snapshot(counts[ESTABLISHED], counts[TIME_WAIT], counts[CLOSE_WAIT], other, server_side, tuple(sockets))


class HostsCounter:
    """Several SocketCounters (one per server) counted from one scan.

    ``snapshot()`` returns the sums, as one SocketCounter would; ``last_by_host``
    holds each server's own Snapshot from the same scan, in the counters' order.
    """

    def __init__(self, counters: Sequence[SocketCounter]) -> None:
        self.counters = list(counters)
        self.last_by_host: tuple[Snapshot, ...] = ()

    @property
    def hosts(self) -> list[str]:
        return [f"{c.host}:{c.port}" for c in self.counters]

    def ignore_existing_time_wait(self) -> int:
        return sum(c.ignore_existing_time_wait() for c in self.counters)

    def snapshot(self) -> Snapshot:
        connections = psutil.net_connections(kind="tcp")
        by_host = tuple(c.snapshot(connections) for c in self.counters)
        self.last_by_host = by_host
        return Snapshot(
            established=sum(s.established for s in by_host), time_wait=sum(s.time_wait for s in by_host),
            close_wait=sum(s.close_wait for s in by_host), other=sum(s.other for s in by_host),
            server_established=sum(s.server_established for s in by_host),
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
    server_established: int
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
