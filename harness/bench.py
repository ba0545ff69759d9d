"""``python -m harness bench``: what the harness costs, measured on this machine.

* ``sampler_ms``: one sample of the sockets to a server with 100, 1,000 and
  10,000 idle client connections open, per backend (median of several).
* ``server``: the slow server holding 1k, 5k and 10k concurrent slow requests
  (2 s delay): latency overhead over the delay at p50/p99 as a client sees it,
  requests dropped, memory holding them (RSS, and PSS: what the process tree costs the machine);
  each beside a Go net/http server, an aiohttp.web server and itself in one process. The client is an epoll loop in this process, on
  the same 2 cores, so its own cost (~5 us a request) is part of the figures.
* ``verdict_s``: seconds from start to verdict for every built-in experiment;
  ``seed_pair_verdict_s``: the seed's pair (``run faulty``, ``run fixed``) 3 times each.

The open-files soft limit is raised to the hard limit; a size the limit cannot
hold is skipped, and the table says so.
"""
from __future__ import annotations

import platform
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
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
from .scenarios import SEED_PAIR, SEED_ROWS, TCP_COUNT, default_expectation
from .server import ServerProcess, stop_forker, use_forker
from .server.workers import cores

SAMPLER_SOCKETS = (100, 1_000, 10_000)
SERVER_CONNECTIONS = (1_000, 5_000, 10_000)
SERVER_DELAY_S = 2.0
FD_MARGIN = 200  # descriptors this process needs besides the benchmark's sockets
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
RESPONSE_END = b"ok\n"
GOALS = {"sampler_ms": {1_000: 2.0, 10_000: 25.0}, "p99_overhead_ms": {10_000: 100.0}, "verdict_s": 3.0,
         "seed_pair_verdict_s": 1.5,  # `run faulty` and `run fixed`: the seed's pair, start to verdict
         "sampler_vs_ss": 0.5, "sampler_vs_dump": 1.5, "server_vs_go_p99": 0.5,
         "server_vs_go_pss": 0.75,  # memory "well under Go's": at most three quarters of it, PSS of the whole tree
         "server_vs_go_at": (5_000, 10_000)}  # the sizes the server_vs_go goals are set for; 1,000 is shown, not judged


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


PEER_ROUNDS = 3  # each size measured against its peers this many times, alternating: a median and a range


def _sampler_peers(server: ServerProcess, counter: SocketCounter, say: Callable[[str], None]) -> dict:
    """The netlink sampler against its peers on the same sockets, alternating, ``PEER_ROUNDS``
    times: ``ss`` filtering them (a process, as a user runs it) and the kernel's bare
    dump (the same filtered dump read without parsing: the floor). Median ms of each
    per round, and the ratios sampler/peer (below 1: faster)."""
    from .sampling import netlink

    ss = shutil.which("ss")
    rounds: dict = {"sampler_ms": [], "dump_ms": [], "ss_ms": []}
    for _ in range(PEER_ROUNDS):
        rounds["sampler_ms"].append(_median_ms(counter.snapshot, 20))
        rounds["dump_ms"].append(_median_ms(lambda: netlink.bare_dump(server.host, server.port), 20))
        if ss is not None:
            rounds["ss_ms"].append(_median_ms(lambda: subprocess.run(
                [ss, "-tan", "state", "all", f"dst {server.host}:{server.port}"], stdout=subprocess.DEVNULL,
                check=True), 5))
    out = {**rounds, "vs_dump": [round(a / b, 3) for a, b in zip(rounds["sampler_ms"], rounds["dump_ms"])],
           "vs_ss": [round(a / b, 3) for a, b in zip(rounds["sampler_ms"], rounds["ss_ms"])]}
    n = len(counter.snapshot().sockets)
    say(f"  sampler vs peers at {n} sockets ({PEER_ROUNDS} rounds, same run): {_spread(out['vs_dump'])}x the bare "
        f"dump" + (f", {_spread(out['vs_ss'])}x ss" if out["vs_ss"] else ", ss not installed"))
    return out


def _spread(values: Sequence[float]) -> str:
    """``median (min-max)``."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def bench_sampler(sizes: Sequence[int], say: Callable[[str], None]) -> tuple[dict, dict]:
    """({backend: {sockets: median ms per sample}}, {sockets: the netlink sampler against its
    peers (``_sampler_peers``)}); a size the fd limit cannot hold is left out."""
    limit = raise_open_files_limit()
    backends = [name for name, backend in BACKENDS.items() if backend.available()]  # auto's choice first
    out: dict = {b: {} for b in backends}
    peers: dict = {}
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
                if "netlink" in backends:
                    peers[n] = _sampler_peers(server, SocketCounter(server.host, server.port, server.own_ports,
                                                                    "netlink"), say)
                for backend in backends:
                    counter = SocketCounter(server.host, server.port, server.own_ports, backend)
                    # psutil is shown for scale (~10x netlink, no goal rests on it): 5 samples a size; each one
                    # reads every socket and every descriptor on the machine (~50 ms with a busy suite beside it)
                    repeats = 5 if backend == "psutil" else 20
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
    return out, peers


def _hold(server: ServerProcess, n: int, delay: float, timeout_s: float = 60.0) -> dict:
    """Open ``n`` keep-alive connections, then send one request on each at once and
    time each from its send to its whole response (s).

    The server's memory is read once, halfway through ``delay`` after the burst: ``n`` slow
    requests in flight, every one read (a burst of 10k takes ~0.1 s to read) and none
    answered. Read as soon as the connections are open it would count what a server has
    accepted so far: Go's net/http at 5,000 read 22-33 MB then, 44 MB a second later, 84 MB
    holding the requests (ours 28, 28, 33: a probe, same run).

    The client is one epoll loop on non-blocking sockets: a send (~5 us, most of it the
    kernel's loopback delivery) and a timestamp per request, then a recv (~3 us) per
    answer, so that what is measured is the server more than the client (an asyncio
    client costs ~25 us a request: ~250 ms of its own at 10k).
    """
    socks: list[socket.socket] = []
    failures: list[str] = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection((server.host, server.port), timeout=30))
        except OSError as exc:
            failures.append(f"connect: {type(exc).__name__}")
    memory: tuple[float, float | None] | None = None  # (RSS, PSS) MB, in flight
    memory_after_s = answered_before_memory = None  # when it was read, after the burst's start; answers by then
    poller = select.epoll(len(socks) or 1)
    by_fd = {s.fileno(): s for s in socks}
    sent: dict[int, float] = {}
    partial: dict[int, bytes] = {}
    latencies: dict[int, float] = {}
    clock = time.monotonic
    try:
        for s in socks:
            s.setblocking(False)
            poller.register(s.fileno(), select.EPOLLIN)
        for fd, s in by_fd.items():  # as tight as it goes: the burst is the server's to absorb
            sent[fd] = clock()
            try:
                s.send(REQUEST)
            except OSError as exc:
                failures.append(f"send: {type(exc).__name__}")
                poller.unregister(fd)
        burst_at = min(sent.values(), default=clock())
        in_flight_at = burst_at + delay / 2  # 1 s at the bench's 2 s delay: ~10x reading a burst of 10k
        deadline = clock() + timeout_s
        while len(latencies) + len(failures) < n and clock() < deadline:
            if memory is None and clock() >= in_flight_at:
                memory_after_s, answered_before_memory = clock() - burst_at, len(latencies)
                memory = _tree_memory_mb(server.pid)  # ~10 ms at 10k, long before an answer is due
            wait = 1.0 if memory is not None else min(1.0, max(0.0, in_flight_at - clock()))
            for fd, _ in poller.poll(wait):
                try:
                    chunk = by_fd[fd].recv(4096)
                except OSError as exc:
                    chunk = None
                    failures.append(f"request: {type(exc).__name__}")
                if chunk:
                    partial[fd] = partial.get(fd, b"") + chunk
                    if partial[fd].endswith(RESPONSE_END):
                        latencies[fd] = clock() - sent[fd]  # answered: nothing more comes, so epoll is quiet
                    continue
                if chunk is not None:
                    failures.append("request: closed before the response")
                poller.unregister(fd)  # closed or failed: epoll would report it for ever
        failures += ["request: no response in time"] * (n - len(latencies) - len(failures))
    finally:
        poller.close()
        for s in socks:  # reset, not closed: 10k TIME_WAITs would slow every later socket dump for 60 s
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    if memory is None:  # every request failed or was answered before its delay was half over: read it now
        memory = _tree_memory_mb(server.pid)
    return {"latencies": list(latencies.values()), "failures": failures, "rss_mb": memory[0], "pss_mb": memory[1],
            "memory_after_s": memory_after_s, "answered_before_memory": answered_before_memory}


def _tree_memory_mb(pid: int) -> tuple[float, float | None]:
    """(RSS, PSS) of a server and its children (--workers), MB. RSS counts the pages the workers
    share since their fork in each of them; PSS splits every shared page among its sharers, so it
    adds up across processes (None where the kernel gives no smaps_rollup: no PSS)."""
    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in tree) / 2**20
    try:
        pss = sum(p.memory_full_info().pss for p in tree) / 2**20
    except (psutil.AccessDenied, AttributeError):  # AttributeError: no pss on this platform
        pss = None
    return rss, pss


def _overheads(figures: dict, n: int, delay: float) -> dict:
    """{p50_overhead_ms, p99_overhead_ms, max_overhead_ms, dropped, rss_mb, pss_mb} of one ``_hold``."""
    overheads = sorted((lat - delay) * 1000 for lat in figures["latencies"])
    pss = figures["pss_mb"]
    row = {"p50_overhead_ms": None, "p99_overhead_ms": None, "max_overhead_ms": None,
           "dropped": n - len(overheads), "rss_mb": round(figures["rss_mb"], 1),
           "pss_mb": round(pss, 1) if pss is not None else None}
    if overheads:
        row.update(p50_overhead_ms=round(statistics.median(overheads), 1),
                   p99_overhead_ms=round(overheads[min(len(overheads) - 1, int(len(overheads) * 0.99))], 1),
                   max_overhead_ms=round(overheads[-1], 1))
    return row


SERVER_ROUNDS = 3  # each size, each server, this many times, alternating: a median and a range
WORKERS = "workers"  # the peer that is the slow server itself with --workers N


def bench_server(sizes: Sequence[int], say: Callable[[str], None], delay: float = SERVER_DELAY_S,
                 rounds: int = SERVER_ROUNDS, peers: Sequence[str] = ("aiohttp", "go", WORKERS),
                 workers: int | None = None) -> dict:
    """{connections: {the slow server's row (the round of median p99), "rounds": [rows],
    "peers": {peer: [rows]}, "vs": {peer: {p50_ratio, p99_ratio, pss_ratio: [per round]}},
    "workers_vs": {"go": {...}}}}.

    Every round holds ``n`` concurrent slow requests on the slow server as everyone runs it
    (one process, the default) and on each peer in turn (``harness.peers``, and the slow
    server with ``--workers`` ``workers``, one a core by default), with the same client and
    delay; ratios are ours over theirs (below 1: ours adds less, or takes less memory). A
    peer that cannot run (no ``go``, one core) is left out and said so."""
    from .peers import AiohttpPeer, GoPeer, build_go, peer_folder

    limit = raise_open_files_limit()
    out: dict = {}
    with peer_folder() as folder:
        workers = workers or cores()
        makers: dict[str, Callable[[], ServerProcess]] = {"ours": lambda: ServerProcess(delay=delay,
                                                                                         track_interval=3600)}
        if WORKERS in peers:
            if workers > 1:
                makers[WORKERS] = lambda: ServerProcess(delay=delay, track_interval=3600,
                                                        extra_args=("--workers", str(workers)))
            else:
                say("  server peers: one core here: no --workers beside one process")
        if "aiohttp" in peers:
            makers["aiohttp"] = lambda: AiohttpPeer(delay=delay)
        if "go" in peers:
            binary = build_go(folder)
            if binary is None:
                say("  server peers: go is not installed (apt-get install golang-go): no Go net/http beside ours")
            else:
                makers["go"] = lambda: GoPeer(delay=delay, binary=binary)
        for n in sizes:
            if n + FD_MARGIN > limit:
                say(f"  server at {n} connections: skipped, the open-files limit is {limit}")
                continue
            rows: dict[str, list[dict]] = {name: [] for name in makers}
            for _ in range(rounds):
                for name, make in makers.items():
                    with make() as server:
                        rows[name].append(_overheads(_hold(server, n, delay), n, delay))
            ours = rows.pop("ours")
            by_p99 = sorted(ours, key=lambda r: (r["p99_overhead_ms"] is None, r["p99_overhead_ms"] or 0))
            row = {**by_p99[len(by_p99) // 2], "rounds": ours, "peers": rows, "vs": {}}
            for name, theirs in rows.items():
                row["vs"][name] = _round_ratios(ours, theirs)
            if WORKERS in rows and "go" in rows:  # the server's --workers beside Go as well
                row["workers_vs"] = {"go": _round_ratios(rows[WORKERS], rows["go"])}
            out[n] = row
            say(f"  server {n:>6} connections: "
                f"p50 +{_spread([r['p50_overhead_ms'] or 0 for r in ours])} ms, "
                f"p99 +{_spread([r['p99_overhead_ms'] or 0 for r in ours])} ms, dropped "
                f"{max(r['dropped'] for r in ours)}, RSS {row['rss_mb']} MB, PSS {row['pss_mb']} MB ({rounds} rounds)")
            for name, theirs in rows.items():
                vs = row["vs"][name]
                say(f"    vs {name:<7}: p50 +{_spread([r['p50_overhead_ms'] or 0 for r in theirs])} ms, p99 "
                    f"+{_spread([r['p99_overhead_ms'] or 0 for r in theirs])} ms, dropped "
                    f"{max(r['dropped'] for r in theirs)}, RSS {theirs[0]['rss_mb']} MB, PSS {theirs[0]['pss_mb']} MB; "
                    f"ours/theirs "
                    f"p50 {_spread_or_none(vs['p50_ratio'])}, p99 {_spread_or_none(vs['p99_ratio'])}, "
                    f"memory {_spread_or_none(vs['pss_ratio'])}")
            for name, vs in row.get("workers_vs", {}).items():
                say(f"    {workers} {WORKERS} vs {name}: p50 {_spread_or_none(vs['p50_ratio'])}, "
                    f"p99 {_spread_or_none(vs['p99_ratio'])}, memory {_spread_or_none(vs['pss_ratio'])}")
    return out


def _round_ratios(ours: list[dict], theirs: list[dict]) -> dict[str, list[float | None]]:
    """{p50_ratio, p99_ratio, pss_ratio: [one a round]}: overheads, and memory (PSS), ours over theirs."""
    ratios = {f"{q}_ratio": [_ratio(a[f"{q}_overhead_ms"], b[f"{q}_overhead_ms"]) for a, b in zip(ours, theirs)]
              for q in ("p50", "p99")}
    ratios["pss_ratio"] = [_ratio(a["pss_mb"], b["pss_mb"]) for a, b in zip(ours, theirs)]
    return ratios


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs; None when either is missing, or theirs is not above 0.1 ms (no ratio to speak of)."""
    if ours is None or theirs is None or theirs <= 0.1:
        return None
    return round(ours / theirs, 3)


def _spread_or_none(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return _spread(known) if known else "-"


def server_ratios(server: dict, peer: str, ours: str = "vs") -> dict:
    """{connections: {p50_ratio, p99_ratio, pss_ratio}}: medians over the rounds, for bench.json; ``ours``
    "workers_vs": the slow server's with --workers, not the default's."""
    out = {}
    for n, row in server.items():
        vs = row.get(ours, {}).get(peer)
        if vs:
            out[n] = {key: (statistics.median([v for v in values if v is not None])
                            if any(v is not None for v in values) else None) for key, values in vs.items()}
    return out


def bench_verdicts(settings: Settings, say: Callable[[str], None], seed_repeats: int = PEER_ROUNDS) -> tuple[dict, dict]:
    """({experiment: seconds to its verdict}, {target: [seconds, ..]}) for the seed's four scenarios on its
    pair and every catalog variant; the seed's pair (``run faulty``, ``run fixed``, a goal of its own) is run
    ``seed_repeats`` times, one after the other, and its figure is the median. Costs ~25 s, +3 s a repeat."""
    plan = [(row.scenario, target, seed_repeats if row.scenario == TCP_COUNT else 1)
            for target in SEED_PAIR for row in SEED_ROWS]
    plan += [(TCP_COUNT, v.name, 1) for v in VARIANTS if v.name not in SEED_PAIR]
    out: dict = {}
    seed_pair: dict = {}
    forking_before = use_forker()  # a server an experiment, forked as `compare` and pytest fork them
    try:
        for scenario, target, repeats in plan:
            times = []
            for _ in range(repeats):
                result = run(Experiment(target, scenario=scenario, settings=settings,
                                        expect=default_expectation(target)))
                times.append(round(result.duration_s, 3))
                say(f"  verdict {result.name:<38} {result.duration_s:5.2f} s  "
                    f"{'passed' if result.passed else 'FAILED'}")
            out[result.name] = statistics.median(times)
            if repeats > 1:
                seed_pair[target] = times
    finally:
        use_forker(forking_before)
        if not forking_before:
            stop_forker()  # the server bench measures servers started as their own interpreter
    return out, seed_pair


PARTS = ("sampler", "server", "verdict", "sites", "watch")
WATCH_SOCKETS = (10, 100, 1_000)
HOLDER = """
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = [socket.create_connection((host, port), timeout=30) for _ in range(n)]
print("ready", flush=True)
sys.stdin.read()  # until the bench closes our stdin
"""


def bench_watch(sizes: Sequence[int], say: Callable[[str], None], rounds: int = PEER_ROUNDS) -> dict:
    """A watch sample (``watch --pid``: the sockets one process holds, by remote end)
    of a process holding N sockets, against psutil reading the same process's
    connections (what a Python user would call), alternating, ``rounds`` times:
    {sockets: {sample_ms: [..], psutil_ms: [..], vs_psutil: [..]}}."""
    from .sampling.owned import sockets_of

    limit = raise_open_files_limit()
    out: dict = {}
    with ServerProcess(delay=SERVER_DELAY_S, track_interval=3600) as server:
        for n in sizes:
            if n + FD_MARGIN > limit:
                say(f"  watch at {n} sockets: skipped, the open-files limit is {limit}")
                continue
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, server.host, str(server.port), str(n)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                if holder.stdout.readline().strip() != "ready":  # its sockets are open: a line, not a pause
                    raise RuntimeError(f"the process holding {n} sockets did not start")
                process = psutil.Process(holder.pid)
                row: dict = {"sample_ms": [], "psutil_ms": []}
                for _ in range(rounds):
                    row["sample_ms"].append(_median_ms(lambda: sockets_of(holder.pid), 20))
                    row["psutil_ms"].append(_median_ms(lambda: process.net_connections(kind="tcp"), 5))
                row["vs_psutil"] = [round(a / b, 3) for a, b in zip(row["sample_ms"], row["psutil_ms"])]
                out[n] = row
                say(f"  watch sample, a process holding {n:>5} sockets: {_spread(row['sample_ms'])} ms; "
                    f"{_spread(row['vs_psutil'])}x psutil's ({_spread(row['psutil_ms'])} ms), same run")
            finally:
                holder.stdin.close()
                holder.wait(timeout=10)
                holder.stdout.close()
    return out
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
        figures["sampler_ms"], peers = bench_sampler(SAMPLER_SOCKETS, say)
        figures["sampler_peers"] = peers
        figures["sampler_vs_dump"] = {n: statistics.median(p["vs_dump"]) for n, p in peers.items()}
        figures["sampler_vs_ss"] = {n: statistics.median(p["vs_ss"]) for n, p in peers.items() if p["vs_ss"]}
    if "server" in parts:
        say(f"server: concurrent slow requests ({SERVER_DELAY_S} s delay)")
        figures["server_workers"] = workers = cores()
        figures["server"] = bench_server(SERVER_CONNECTIONS, say, workers=workers)
        figures["server_vs_aiohttp"] = server_ratios(figures["server"], "aiohttp")
        figures["server_vs_go"] = server_ratios(figures["server"], "go")
        figures["server_vs_workers"] = server_ratios(figures["server"], WORKERS)
        figures["workers_vs_go"] = server_ratios(figures["server"], "go", ours="workers_vs")
    if "sites" in parts:
        say("sites: what recording where each connection is opened costs")
        figures["sites"] = bench_sites(say)
    if "watch" in parts:
        say("watch: cost of one sample of a running process's sockets")
        figures["watch"] = bench_watch(WATCH_SOCKETS, say)
        figures["watch_vs_psutil"] = {n: statistics.median(r["vs_psutil"]) for n, r in figures["watch"].items()}
    if "verdict" in parts:
        say("verdict: time to a verdict per experiment")
        figures["verdict_s"], figures["seed_pair_verdict_s"] = bench_verdicts(settings, say)
    path = write_json(settings.results_path / "bench.json", figures)
    return figures, path


def _met(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT met"


def _met_all(*pairs: float | None) -> str:
    """"met" when every (value, goal) pair given in turn has its value, at most its goal."""
    values, goals = pairs[::2], pairs[1::2]
    return "met" if all(v is not None and v <= g for v, g in zip(values, goals)) else "NOT met"


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
                     f"dropped {row['dropped']}  RSS {row['rss_mb']} MB  PSS {row.get('pss_mb')} MB"
                     + (f"   goal p99 <= {goal} ms, none dropped: {'met' if met else 'NOT met'}" if goal else ""))
    for n, peers in figures.get("sampler_peers", {}).items():
        line = f"sampler netlink {int(n):>6} sockets  {_spread(peers['vs_dump'])}x the bare dump"
        line += f" (goal <= {GOALS['sampler_vs_dump']}: {_met(statistics.median(peers['vs_dump']), GOALS['sampler_vs_dump'])})"
        if peers["vs_ss"]:
            line += (f", {_spread(peers['vs_ss'])}x ss (goal <= {GOALS['sampler_vs_ss']}: "
                     f"{_met(statistics.median(peers['vs_ss']), GOALS['sampler_vs_ss'])})")
        lines.append(line)
    workers = figures.get("server_workers")
    for key in ("server_vs_go", "workers_vs_go", "server_vs_aiohttp", "server_vs_workers"):
        who, _, peer = key.partition("_vs_")
        who = "ours" if who == "server" else f"ours with {workers} workers"
        if peer == WORKERS:
            peer = f"{workers} workers"
        for n, ratios in figures.get(key, {}).items():
            p50, p99, pss = ratios["p50_ratio"], ratios["p99_ratio"], ratios.get("pss_ratio")
            line = f"server {int(n):>6} connections, {who} vs {peer}: p50 {p50}, p99 {p99}, memory {pss}"
            if peer == "go" and int(n) not in GOALS["server_vs_go_at"]:
                line += "   (goals are set at " + " and ".join(f"{at:,}" for at in GOALS["server_vs_go_at"]) + ")"
            elif peer == "go":
                line += (f"   goal p99 <= {GOALS['server_vs_go_p99']}, p50 <= 1: "
                         + _met_all(p99, GOALS["server_vs_go_p99"], p50, 1.0)
                         + f"; memory <= {GOALS['server_vs_go_pss']}: " + _met_all(pss, GOALS["server_vs_go_pss"]))
            lines.append(line)
    for n, row in figures.get("watch", {}).items():
        lines.append(f"watch sample, a process holding {int(n):>5} sockets  {_spread(row['sample_ms'])} ms, "
                     f"{_spread(row['vs_psutil'])}x psutil's")
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
        seed = {target: verdicts[f"{TCP_COUNT}-{target}"] for target in SEED_PAIR if f"{TCP_COUNT}-{target}" in verdicts}
        if seed:
            goal = GOALS["seed_pair_verdict_s"]
            repeated = figures.get("seed_pair_verdict_s", {})
            lines.append("verdicts: the seed's pair, " + ", ".join(
                f"run {t} {_spread(repeated[t]) if t in repeated else f'{s:.2f}'} s" for t, s in seed.items())
                         + f"; goal <= {goal} s each: {'met' if max(seed.values()) <= goal else 'NOT met'}")
    return "\n".join(lines)
