"""One client driven against its servers while its sockets are sampled.

``Run`` wires the flow together: server -> client -> driver -> sampler. The
scenarios (``harness.scenarios``) use it to measure; ``ExperimentResult``
(``result.py``) is what they fill in.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence

from ..sampling import HELD_STATES, HostsCounter, Sample, SeriesRecorder, Snapshot, SocketCounter
from ..server import STATS_GAUGES, ServerError, ServerProcess
from .stacks import task_stacks, thread_stacks, where_they_wait
from .driver import Driver, InFlight
from .result import Churn

# A drain whose requests still finish waits past its deadline, up to this many times it: at a load average of 17 on 2
# cores (a soak), 19 of a round's 23 HTTP/2 requests, each on a new TLS connection, were in flight 5.6 s after due.
DRAIN_MOST_TIMES = 4  # a round's 5.6-s deadline stretched to 22 s: room for 4x slower, inside pytest's 60-s timeout
WATCH_INTERVAL_S = 0.1  # how often the servers are checked for life: a death is reported well within 2 s
# the harness's own threads (named so where they start), left out of where a stalled client waits
HARNESS_THREADS = ("experiment-watchdog", "socket-sampler", "server-forker", "server-")
SETTLE_SAMPLES_MAX = 10  # a residual that has not settled after 10 samples is taken as it stands
Progress = Callable[[str], None]


class ExperimentError(RuntimeError):
    """The experiment could not measure what it set out to (not a verdict)."""


class Run:
    """A client, its driver and a sampler around one running server.

    Use as a context manager: entering takes the server's counters and starts
    sampling; leaving stops sampling and closes the client (if it can be closed).
    """

    def __init__(self, request: Callable[[str], object], servers: ServerProcess | Sequence[ServerProcess],
                 sample_interval: float, sampler: str = "auto", deadline_s: float = float("inf")) -> None:
        self.servers = [servers] if isinstance(servers, ServerProcess) else list(servers)
        self.server = self.servers[0]
        self.client = request
        self.tracker = InFlight()
        self.stop_event = threading.Event()
        # with several servers, the schedule's requests go to each in turn
        self.driver = Driver(request, [s.url for s in self.servers], self.tracker, self.stop_event)
        counters = [SocketCounter(s.host, s.port, s.own_ports, sampler) for s in self.servers]
        self.counter: SocketCounter | HostsCounter = counters[0] if len(counters) == 1 else HostsCounter(counters)
        self.recorder = SeriesRecorder(self.counter, sample_interval, self.tracker.window, self.driver.position)
        self.stats_before: list[dict] = []
        self.stats_connections_before = 0
        self.deadline_s = deadline_s  # the whole experiment's (--deadline), from entering
        self.stopped_because: str | None = None  # a server died, or the deadline passed
        self._watchdog = threading.Thread(target=self._watch, name="experiment-watchdog", daemon=True)

    @property
    def hosts(self) -> list[str]:
        return [f"{s.host}:{s.port}" for s in self.servers] if len(self.servers) > 1 else []

    def __enter__(self) -> Run:
        self.counter.ignore_existing_time_wait()
        self.stats_before = [self._stats(s) for s in self.servers]
        self.stats_connections_before = sum(s.stats_connections for s in self.servers)
        self.started = time.monotonic()
        self.recorder.start()
        self._watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.recorder.stop()
        self._watchdog.join(timeout=5)

    def _watch(self) -> None:
        """Every WATCH_INTERVAL_S: a server that died, or the deadline passing, stops
        the experiment (the driver and every wait)."""
        while not self.stop_event.wait(WATCH_INTERVAL_S):
            for server in self.servers:
                if not server.alive():
                    self.stopped_because = (
                        f"the slow server (pid {server.pid}) died {time.monotonic() - self.started:.1f} s into the "
                        f"experiment, exit status {server.returncode()}; what was measured is kept, marked incomplete"
                        + server.tail(5))
                    self.stop_event.set()
                    return
            if time.monotonic() - self.started > self.deadline_s:
                self.stopped_because = (f"the experiment passed its deadline of {self.deadline_s:g} s (--deadline); "
                                        "what was measured is kept, marked incomplete")
                self.stop_event.set()
                return

    def raise_if_stopped(self) -> None:
        """Raise ExperimentError if a server died or the deadline passed (noticed
        within WATCH_INTERVAL_S)."""
        if self.stopped_because is None:
            for server in self.servers:
                if not server.alive():
                    self.stopped_because = (f"the slow server (pid {server.pid}) died, exit status "
                                            f"{server.returncode()}; what was measured is kept, marked incomplete"
                                            + server.tail(5))
        if self.stopped_because is not None:
            raise ExperimentError(self.stopped_because)

    def _stats(self, server: ServerProcess) -> dict:
        try:
            return server.stats()
        except (OSError, ValueError, ServerError) as exc:
            self.raise_if_stopped()
            raise ExperimentError(f"could not read the server's counters: {type(exc).__name__}: {exc}") from None

    def close_client(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def drain(self, deadline_s: float) -> None:
        """Wait until every request has finished: at most ``deadline_s`` s with none finishing
        (requests still finishing, as on a loaded machine, are waited for), and at most
        DRAIN_MOST_TIMES x ``deadline_s`` in all; a server that died ends the wait within
        WATCH_INTERVAL_S."""
        self.tracker.wait_drained(deadline_s, DRAIN_MOST_TIMES * deadline_s, self.raise_if_stopped, WATCH_INTERVAL_S)
        self.raise_if_stopped()
        if self.tracker.current:
            raise ExperimentError(
                f"{self.tracker.current} requests still in flight, none finishing for {deadline_s:.1f} s "
                f"(or {DRAIN_MOST_TIMES * deadline_s:.1f} s in all); " + self._where_requests_wait() + "; "
                + self._where_client_waits())

    def _where_client_waits(self) -> str:
        """For a drain that gave up: where the client's threads (and an async client's tasks) wait,
        the largest groups named; every stack is written to stderr. The harness's own threads are
        left out."""
        threads = [(name, stack) for name, stack in thread_stacks()
                   if not name.startswith(HARNESS_THREADS)]
        said, full = where_they_wait(threads, "threads")
        pending = getattr(self.client, "pending_tasks", None)
        if callable(pending):
            said_tasks, full_tasks = where_they_wait(task_stacks(pending()), "tasks")
            said, full = f"{said}; its {said_tasks}", f"{full}\n{full_tasks}"
        print(f"harness: where the client waits, a drain having given up:\n{full}", file=sys.stderr, flush=True)
        return f"the client's {said}"

    def _where_requests_wait(self) -> str:
        """For a drain that gave up: whether the requests in flight reached the servers (what
        they hold and received, from /stats) and the client's sockets to them by state, so a
        stall is placed on the server's side or the client's. Costs a /stats call a server and
        one sample."""
        if not all(s.alive() for s in self.servers):
            return "a server has died"
        held = received = connecting = 0
        try:
            for server, before in zip(self.servers, self.stats_before):
                now = server.stats()
                held += now["active_requests"]
                connecting += now["connecting"]
                received += now["requests_received"] - before.get("requests_received", 0)
        except (OSError, ValueError, KeyError, ServerError) as exc:
            return f"the server is alive, its counters unreadable ({type(exc).__name__}: {exc})"
        snapshot = self.counter.snapshot()
        return (f"the server is alive: it holds {held} requests unanswered and {connecting} connections that have "
                f"sent nothing yet, and received {received} of the {self.tracker.started} requests started; the "
                f"client's sockets to it: {snapshot.established} established, {snapshot.close_wait} in CLOSE_WAIT, "
                f"{snapshot.other} connecting or closing")

    def settle(self, label: str) -> tuple[Sample, Snapshot]:
        """Sample until two samples in a row agree on the held sockets (bounded)."""
        sample = self.recorder.sample(label)
        for _ in range(SETTLE_SAMPLES_MAX):
            again = self.recorder.sample(label)
            if (again.established, again.close_wait) == (sample.established, sample.close_wait):
                return again, self.recorder.last  # type: ignore[return-value]
            sample = again
        return sample, self.recorder.last  # type: ignore[return-value]

    def watch(self, until: Callable[[Sample], bool], deadline_s: float, interval: float, label: str) -> Sample:
        """Sample every ``interval`` s until ``until(sample)`` or the deadline; returns the last."""
        end = time.monotonic() + deadline_s
        sample = self.recorder.sample(label)
        while not until(sample) and time.monotonic() < end:
            self.stop_event.wait(min(interval, max(0.0, end - time.monotonic())))
            if self.stop_event.is_set():
                self.raise_if_stopped()
                break
            sample = self.recorder.sample(label)
        return sample

    def wait_server(self, accept: Callable[[dict], bool], deadline_s: float, interval: float) -> dict:
        """Poll the server's counters (as ``server_delta``) until ``accept`` or the deadline."""
        end = time.monotonic() + deadline_s
        delta = self.server_delta()
        while not accept(delta) and time.monotonic() < end and not self.stop_event.wait(interval):
            delta = self.server_delta()
        return delta

    def server_delta(self) -> dict:
        """Counters gained on the server since entering, the harness's /stats calls left out."""
        delta: dict = {}
        for server, before in zip(self.servers, self.stats_before):
            after = self._stats(server)
            for k in after:
                if k not in STATS_GAUGES:
                    delta[k] = delta.get(k, 0) + after[k] - before.get(k, 0)
        # the harness's own /stats connections are not the client's
        delta["connections_accepted"] -= sum(s.stats_connections for s in self.servers) - self.stats_connections_before
        return delta

    def confirm_traffic(self) -> None:
        """Raise ExperimentError unless the servers received at least every request
        the driver saw succeed, on at least one connection: a verdict rests only on
        traffic the server saw. (Requests still in flight or failed are not owed.)"""
        delta = self.server_delta()
        t = self.tracker
        succeeded = t.finished - t.failed
        received, accepted = delta["requests_received"], delta["connections_accepted"]
        if t.started and (accepted == 0 or received < succeeded):
            raise ExperimentError(
                f"nothing measured: the client reported {succeeded} of {t.started} requests done, the server "
                f"received {received} on {accepted} connections; a target must make one request to the URL it "
                "is given")

    def socket_info(self) -> list[dict]:
        """Per server, {local port: (state, bytes received, ms since data)} of the sockets
        the client holds (ESTABLISHED, CLOSE_WAIT), from tcp_info (empty where the
        sampler cannot read it). One filtered dump per server."""
        counters = getattr(self.counter, "counters", [self.counter])
        return [{port: row for port, row in (c.info() or {}).items() if row[0] in HELD_STATES} for c in counters]

    def tally(self) -> dict:
        """The Tally figures (``result.Tally``) of the requests driven so far."""
        t = self.tracker
        return dict(requests=t.started, failed=t.failed, errors=dict(t.errors), first_error=t.first_error,
                    peak_in_flight=t.peak)

    def churn(self, time_wait: int) -> dict:
        """The Churn figures (``result.Churn``): new connections the server accepted since
        entering and ``time_wait`` sockets left, per request driven."""
        delta = self.server_delta()
        requests, new = self.tracker.started, delta["connections_accepted"]
        return dict(new_connections=new, new_connections_per_request=Churn.per_request(new, requests),
                    time_wait=time_wait, time_wait_per_request=Churn.per_request(time_wait, requests),
                    hung_up_early=delta["hung_up_early"])
