"""``python -m harness bench``: what the harness costs, measured on this machine.

* ``sampler_ms``: one sample of the sockets to a server with 100, 1,000 and
  10,000 idle client connections open, per backend (median of several).
* ``server``: the slow server holding 1k, 5k and 10k concurrent slow requests
  (2 s delay): latency overhead over the delay at p50/p99 as a client sees it,
  requests dropped, server RSS. The client is an epoll loop in this process, on
  the same 2 cores, so its own cost (~5 us a request) is part of the figures.
* ``verdict_s``: seconds from start to verdict for every built-in experiment.

The open-files soft limit is raised to the hard limit; a size the limit cannot
hold is skipped, and the table says so.
"""
from __future__ import annotations

import platform
import selectors
import socket
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from .clients import VARIANTS
from .limits import raise_open_files_limit
from .options import Settings
from .report import write_json
from .runner import Experiment, run
from .sampling import BACKENDS, SocketCounter
from .scenarios import SEED_PAIR, SEED_ROWS, default_expectation
from .server import ServerProcess

SAMPLER_SOCKETS = (100, 1_000, 10_000)
SERVER_CONNECTIONS = (1_000, 5_000, 10_000)
SERVER_DELAY_S = 2.0
FD_MARGIN = 200  # descriptors this process needs besides the benchmark's sockets
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
RESPONSE_END = b"ok\n"
GOALS = {"sampler_ms": {1_000: 2.0, 10_000: 25.0}, "p99_overhead_ms": {10_000: 100.0}, "verdict_s": 3.0}


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def bench_sampler(sizes: Sequence[int], say: Callable[[str], None]) -> dict:
    """{backend: {sockets: median ms per sample}}; a size the fd limit cannot hold is left out."""
    limit = raise_open_files_limit()
    backends = [name for name, backend in BACKENDS.items() if backend.available()]  # auto's choice first
    out: dict = {b: {} for b in backends}
    for n in sizes:
        if n + FD_MARGIN > limit:
            say(f"  sampler at {n} sockets: skipped, the open-files limit is {limit}")
            continue
        with ServerProcess(delay=SERVER_DELAY_S, track_interval=3600) as server:
            socks = []
            try:
                for _ in range(n):
                    socks.append(socket.create_connection((server.host, server.port), timeout=10))
                both_sides = SocketCounter(server.host, server.port, server.own_ports, backends[0], server_side=True)
                deadline = time.monotonic() + 30  # the server accepts them in its own time
                while (both_sides.snapshot().server_established or 0) < n and time.monotonic() < deadline:
                    time.sleep(0.05)  # polling the server's accept loop, bounded by the deadline
                for backend in backends:
                    counter = SocketCounter(server.host, server.port, server.own_ports, backend)
                    repeats = 5 if backend == "psutil" and n >= 10_000 else 20
                    out[backend][n] = _median_ms(counter.snapshot, repeats)
                    say(f"  sampler {backend:<7} {n:>6} sockets: {out[backend][n]:8.2f} ms a sample")
                    if counter.exact:  # the exact check's tcp_info dump, read only at round ends and sweeps
                        name = f"{backend}+tcp_info"
                        out.setdefault(name, {})[n] = _median_ms(counter.info, repeats)
                        say(f"  sampler {name} {n:>6} sockets: {out[name][n]:8.2f} ms a read "
                            f"({out[name][n] / out[backend][n]:.1f}x the plain sample, same run)")
            finally:
                for s in socks:  # reset, not closed: 10k TIME_WAITs would slow every later scan for 60 s
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
    return out


def _hold(server: ServerProcess, n: int, timeout_s: float = 60.0) -> dict:
    """Open ``n`` keep-alive connections, then send one request on each at once and
    time each from its send to its whole response (s).

    The client is one epoll loop on non-blocking sockets, ~5 us a request, so
    that what is measured is the server more than the client (an asyncio client
    costs ~25 us a request: ~250 ms of its own at 10k).
    """
    socks = []
    failures: list[str] = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection((server.host, server.port), timeout=30))
        except OSError as exc:
            failures.append(f"connect: {type(exc).__name__}")
    for s in socks:
        s.setblocking(False)
    rss_mb = psutil.Process(server.pid).memory_info().rss / 2**20
    selector = selectors.DefaultSelector()
    sent: dict[int, float] = {}
    received: dict[int, bytes] = {}
    latencies: list[float] = []
    try:
        for s in socks:
            fd = s.fileno()
            sent[fd] = time.monotonic()
            s.send(REQUEST)
            received[fd] = b""
            selector.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        pending = len(socks)
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1.0):
                sock = key.fileobj
                fd = key.fd
                try:
                    chunk = sock.recv(4096)
                except OSError as exc:
                    failures.append(f"request: {type(exc).__name__}")
                    chunk = None
                if chunk:
                    received[fd] += chunk
                    if not received[fd].endswith(RESPONSE_END):
                        continue
                    latencies.append(time.monotonic() - sent[fd])
                elif chunk is not None:
                    failures.append("request: closed before the response")
                selector.unregister(sock)
                pending -= 1
        failures += ["request: no response in time"] * pending
    finally:
        selector.close()
        for s in socks:
            s.close()
    return {"latencies": latencies, "failures": failures, "rss_mb": rss_mb}


def bench_server(sizes: Sequence[int], say: Callable[[str], None], delay: float = SERVER_DELAY_S) -> dict:
    """{connections: {p50_overhead_ms, p99_overhead_ms, max_overhead_ms, dropped, rss_mb}}."""
    limit = raise_open_files_limit()
    out: dict = {}
    for n in sizes:
        if n + FD_MARGIN > limit:
            say(f"  server at {n} connections: skipped, the open-files limit is {limit}")
            continue
        with ServerProcess(delay=delay, track_interval=3600) as server:
            figures = _hold(server, n)
        overheads = sorted((lat - delay) * 1000 for lat in figures["latencies"])
        row = {"p50_overhead_ms": None, "p99_overhead_ms": None, "max_overhead_ms": None,
               "dropped": n - len(overheads), "rss_mb": round(figures["rss_mb"], 1)}
        if overheads:
            row.update(p50_overhead_ms=round(statistics.median(overheads), 1),
                       p99_overhead_ms=round(overheads[min(len(overheads) - 1, int(len(overheads) * 0.99))], 1),
                       max_overhead_ms=round(overheads[-1], 1))
        out[n] = row
        say(f"  server {n:>6} connections: p50 +{row['p50_overhead_ms']} ms, p99 +{row['p99_overhead_ms']} ms, "
            f"max +{row['max_overhead_ms']} ms, dropped {row['dropped']}, RSS {row['rss_mb']} MB")
    return out


def bench_verdicts(settings: Settings, say: Callable[[str], None]) -> dict:
    """{experiment: seconds to its verdict} for the seed's four scenarios on its pair and every catalog variant."""
    plan = [(row.scenario, target) for target in SEED_PAIR for row in SEED_ROWS]
    plan += [("tcp_count", v.name) for v in VARIANTS if v.name not in SEED_PAIR]
    out = {}
    for scenario, target in plan:
        result = run(Experiment(target, scenario=scenario, settings=settings, expect=default_expectation(target)))
        out[result.name] = round(result.duration_s, 3)
        say(f"  verdict {result.name:<38} {result.duration_s:5.2f} s  {'passed' if result.passed else 'FAILED'}")
    return out


PARTS = ("sampler", "server", "verdict", "sites")
SITE_CONNECTIONS = 500  # connections per measurement: enough for a stable per-connection figure


def bench_sites(say: Callable[[str], None], connections: int = SITE_CONNECTIONS, repeats: int = 3) -> dict:
    """Microseconds per connect with and without the creation-site recorder, alternating,
    ``repeats`` times each, in this run: {plain_us, recorded_us: [..], ratio: median}."""
    from .sampling import sites

    out: dict = {"plain_us": [], "recorded_us": []}
    with ServerProcess(delay=0.0, track_interval=3600) as server:
        address = (server.host, server.port)

        def connects() -> float:
            started = time.perf_counter()
            for _ in range(connections):
                s = socket.create_connection(address, timeout=10)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # no TIME_WAIT pile
                s.close()
            return (time.perf_counter() - started) / connections * 1e6

        for _ in range(repeats):
            out["plain_us"].append(round(connects(), 1))
            with sites.recording():
                out["recorded_us"].append(round(connects(), 1))
    out["ratio"] = round(statistics.median(out["recorded_us"]) / statistics.median(out["plain_us"]), 3)
    say(f"  sites: a connect costs {statistics.median(out['plain_us']):.1f} us, "
        f"{statistics.median(out['recorded_us']):.1f} us with its site recorded ({out['ratio']}x, same run; "
        f"ranges {min(out['plain_us'])}-{max(out['plain_us'])} and {min(out['recorded_us'])}-{max(out['recorded_us'])})")
    return out


def run_bench(settings: Settings, parts: Sequence[str], say: Callable[[str], None]) -> tuple[dict, Path]:
    """Run the parts asked for; write ``bench.json`` in the results dir; return (figures, its path)."""
    figures: dict = {"machine": {"cores": psutil.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform(), "open_files_limit": raise_open_files_limit()},
                     "goals": GOALS}
    if "sampler" in parts:
        say("sampler: cost of one sample")
        figures["sampler_ms"] = bench_sampler(SAMPLER_SOCKETS, say)
    if "server" in parts:
        say(f"server: concurrent slow requests ({SERVER_DELAY_S} s delay)")
        figures["server"] = bench_server(SERVER_CONNECTIONS, say)
    if "sites" in parts:
        say("sites: what recording where each connection is opened costs")
        figures["sites"] = bench_sites(say)
    if "verdict" in parts:
        say("verdict: time to a verdict per experiment")
        figures["verdict_s"] = bench_verdicts(settings, say)
    path = write_json(settings.results_path / "bench.json", figures)
    return figures, path


def table(figures: dict) -> str:
    """The figures against the goals, for a terminal."""
    lines = []
    for backend, by_size in figures.get("sampler_ms", {}).items():
        for n, ms in by_size.items():
            goal = GOALS["sampler_ms"].get(int(n))
            lines.append(f"sampler {backend:<7} {int(n):>6} sockets  {ms:8.2f} ms"
                         + (f"   goal <= {goal} ms: {'met' if ms <= goal else 'NOT met'}" if goal and backend == "netlink" else ""))
    for n, row in figures.get("server", {}).items():
        goal = GOALS["p99_overhead_ms"].get(int(n))
        p99 = row["p99_overhead_ms"]
        met = p99 is not None and p99 <= goal and row["dropped"] == 0 if goal else None
        lines.append(f"server {int(n):>6} connections  p50 +{row['p50_overhead_ms']} ms  p99 +{p99} ms  "
                     f"dropped {row['dropped']}  RSS {row['rss_mb']} MB"
                     + (f"   goal p99 <= {goal} ms, none dropped: {'met' if met else 'NOT met'}" if goal else ""))
    site_costs = figures.get("sites")
    if site_costs:
        lines.append(f"sites: a connect {statistics.median(site_costs['plain_us']):.1f} us, with its site recorded "
                     f"{statistics.median(site_costs['recorded_us']):.1f} us ({site_costs['ratio']}x, same run)")
    verdicts = figures.get("verdict_s", {})
    if verdicts:
        slowest = max(verdicts, key=verdicts.get)
        over = [k for k, s in verdicts.items() if s > GOALS["verdict_s"]]
        lines.append(f"verdicts: {len(verdicts)} experiments, slowest {slowest} {verdicts[slowest]:.2f} s; "
                     f"goal <= {GOALS['verdict_s']} s each: " + ("met" if not over else f"NOT met by {', '.join(over)}"))
    return "\n".join(lines)
