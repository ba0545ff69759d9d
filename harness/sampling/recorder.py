"""A time series of socket counts: a thread samples a counter every interval,
and anyone may ask for a sample now (round ends, cycle ends)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .counter import HostsCounter, Snapshot, SocketCounter


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
    unread: int = 0  # held sockets counted in flight for an answer the client has not read yet (UnreadAnswers)

    @property
    def held(self) -> int:
        """Client sockets not yet closed by the client: ESTABLISHED + CLOSE_WAIT.

        A CLOSE_WAIT socket was closed by the server but its file descriptor is
        still open in the client: it is held as surely as an ESTABLISHED one.
        """
        return self.established + self.close_wait

    def as_dict(self) -> dict:
        return asdict(self)


class UnreadAnswers:
    """Held sockets with bytes that arrived and the client has not read: to the client
    its request is still in flight (its pool cannot hand that socket out), though the
    server has answered and no longer counts it. A CPU-starved client can hold many.

    A socket counts only for ``FRESH_S`` from the first sample that saw it unread
    without a break: a starved client reads within that, while a client that never
    reads a stream it opened (a leak) keeps it unread for ever and stops counting.
    """

    # Measured: four bursty Python pools of 100 (tests/programs/bursty_client.py) beside
    # two busy loops on 2 cores read each of ~280 answers within 15 ms of a 10-ms poll
    # first seeing it unread. 1 s leaves a far busier machine room, and bounds what a
    # leak that never reads can hide to the sockets it opens in 1 s.
    FRESH_S = 1.0

    def __init__(self) -> None:
        self.since: dict[int, float] = {}  # local port -> when first seen unread, monotonic s

    def count(self, snapshot: Snapshot, now: float) -> int:
        """How many of ``snapshot``'s held sockets count in flight at ``now`` (s); 0 where
        the backend cannot read receive queues."""
        if snapshot.unread is None:
            return 0
        self.since = {port: self.since.get(port, now) for port in snapshot.unread}
        return sum(1 for first in self.since.values() if now - first <= self.FRESH_S)


class SeriesRecorder:
    """Samples a SocketCounter every ``interval`` s in a thread, and on demand.

    ``in_flight_window`` is called around each snapshot: it must return the most
    requests that were in flight at any moment since its previous call, so that a
    sample's ``in_flight_peak`` covers the whole time the scan took. With
    ``count_unread`` (a client the harness does not drive, whose in-flight figures
    come from the server), held sockets with an answer not yet read are added to
    a sample's requests in flight, and to its peak (``UnreadAnswers``).
    """

    def __init__(
        self,
        counter: SocketCounter | HostsCounter,
        interval: float,
        in_flight_window: Callable[[], tuple[int, int]],
        position: Callable[[], tuple[int, int]] = lambda: (0, 0),
        count_unread: bool = False,
    ) -> None:
        self.counter = counter
        self.interval = interval
        self.in_flight_window = in_flight_window
        self.position = position
        self.unread_answers = UnreadAnswers() if count_unread else None
        self._peak_with_unread = 0
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
            now = time.monotonic()
            unread = 0
            if self.unread_answers is not None:
                unread = self.unread_answers.count(snap, now)
                current += unread
                self._peak_with_unread = peak = max(peak, self._peak_with_unread, current)
            rnd, cycle = self.position()
            sample = Sample(
                t=round(now - self.t0, 4), round=rnd, cycle=cycle,
                in_flight=current, in_flight_peak=peak,
                established=snap.established, time_wait=snap.time_wait, close_wait=snap.close_wait,
                other=snap.other, server_established=snap.server_established, label=label,
                held_by_host=tuple(s.established + s.close_wait for s in getattr(self.counter, "last_by_host", ())),
                unread=unread,
            )
            self.samples.append(sample)
            self.last = snap
            return sample

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
