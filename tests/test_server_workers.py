"""``--workers N``: several processes on one port, one server to its clients: the counters,
the peak in flight, the /hold barrier, the every-N-th fault, stop-accepting and the stalled
handshakes are the whole server's, and the workers end with their parent, however it ends."""
import select
import socket
import ssl
import subprocess
import sys

import psutil
import pytest

from harness.server import ServerProcess

from .test_server import REQUEST_11, connect, read_response
from .waiting import wait_for

CONNECTIONS = 40  # spread by the kernel's hash over 2 workers: all on one has odds 2 ** -39
# a worker ends ~0.1 s after its SIGTERM (a parent's, or PR_SET_PDEATHSIG's); 10 s covers a loaded machine and the
# parent's own 5 s grace before SIGKILL
WORKERS_END_S = 10


def workers_of(server: ServerProcess) -> list[psutil.Process]:
    """Worker 0 (the process started) and the others, its children."""
    process = psutil.Process(server.pid)
    return [process, *process.children()]


def open_sockets_by_worker(server: ServerProcess) -> list[int]:
    """ESTABLISHED sockets on the server's port, per worker."""
    counts = []
    for worker in workers_of(server):
        counts.append(sum(1 for c in worker.net_connections(kind="tcp")
                          if c.laddr and c.laddr.port == server.port and c.status == "ESTABLISHED"))
    return counts


def test_the_workers_share_the_port_and_count_as_one_server(start_slow_server):
    server = start_slow_server(delay=0.05, workers=2)
    assert len(workers_of(server)) == 2
    socks = [connect(server) for _ in range(CONNECTIONS)]
    try:
        for s in socks:
            s.sendall(REQUEST_11)
        for s in socks:
            assert read_response(s).startswith(b"HTTP/1.1 200 OK")
        per_worker = wait_for(lambda: open_sockets_by_worker(server), lambda c: sum(c) == CONNECTIONS)
        assert min(per_worker) > 0, f"one worker took every connection: {per_worker}"
        stats = server.stats()
        assert stats["requests_served"] == stats["requests_received"] == CONNECTIONS
        assert stats["connections_accepted"] == CONNECTIONS + server.stats_connections
        assert stats["accepting"] is True
    finally:
        for s in socks:
            s.close()


def test_the_peak_in_flight_is_the_whole_servers(start_slow_server):
    server = start_slow_server(delay=30, workers=2)
    socks = [connect(server) for _ in range(CONNECTIONS)]
    try:
        for s in socks:
            s.sendall(REQUEST_11)
        stats = wait_for(server.stats, lambda st: st["active_requests"] == CONNECTIONS)
        assert stats["peak_active_requests"] == CONNECTIONS  # not a worker's share, nor their peaks summed
        assert min(open_sockets_by_worker(server)) > 0
    finally:
        for s in socks:
            s.close()
    stats = wait_for(server.stats, lambda st: st["active_requests"] == 0)
    assert stats["hung_up_early"] == CONNECTIONS and stats["peak_active_requests"] == CONNECTIONS


@pytest.mark.parametrize("loop", ["asyncio", "auto"])
def test_a_hold_set_at_one_worker_releases_every_workers_answers(start_slow_server, loop):
    """The barrier counts the requests of every worker, and once reached every worker answers at once
    (then=0): a worker that missed the word would answer after the 30 s delay."""
    server = start_slow_server(delay=30, workers=2, loop=loop)
    assert server.hold(until=CONNECTIONS, most_s=20, then_s=0) == {"holding_until": CONNECTIONS}
    socks = [connect(server) for _ in range(CONNECTIONS)]
    try:
        for s in socks:
            s.sendall(REQUEST_11)
        for s in socks:  # connect()'s 5 s timeout: a held answer (20 + 30 s) fails here
            assert read_response(s).startswith(b"HTTP/1.1 200 OK")
        assert min(open_sockets_by_worker(server)) > 0
    finally:
        for s in socks:
            s.close()
    stats = server.stats()
    assert (stats["holds_reached"], stats["holds_missed"]) == (1, 0)


def test_a_missed_hold_tells_the_whole_servers_in_flight_and_a_new_one_clears_it(start_slow_server):
    server = start_slow_server(delay=30, workers=2)
    server.hold(until=CONNECTIONS + 1, most_s=30)
    socks = [connect(server) for _ in range(CONNECTIONS)]
    try:
        for s in socks:
            s.sendall(REQUEST_11)
        wait_for(server.stats, lambda st: st["active_requests"] == CONNECTIONS)
        assert min(open_sockets_by_worker(server)) > 0  # both workers hold some of them
        server.hold(until=CONNECTIONS + 1, most_s=0)  # its deadline now, with every request in flight
        stats = wait_for(server.stats, lambda st: st["holds_missed"] == 1)
        assert stats["in_flight_at_miss"] == CONNECTIONS  # every worker's, not the owner's share
        server.hold(until=CONNECTIONS + 1, most_s=30)
        assert server.stats()["in_flight_at_miss"] == 0  # cleared in every worker's row
    finally:
        for s in socks:
            s.close()


def test_the_every_nth_fault_counts_the_whole_servers_requests(start_slow_server):
    server = start_slow_server(delay=0, workers=2, fault="reset", every=3)
    outcomes = []
    for _ in range(12):
        with connect(server) as s:
            s.sendall(REQUEST_11)
            try:
                outcomes.append("ok" if read_response(s).startswith(b"HTTP/1.1 200") else "closed")
            except ConnectionResetError:
                outcomes.append("reset")
    assert outcomes == ["ok", "ok", "reset"] * 4
    assert server.stats()["resets_sent"] == 4


def test_stop_accepting_closes_every_workers_listener(start_slow_server):
    server = start_slow_server(delay=0, workers=2, stop_accepting_after=3)
    kept = connect(server)  # open before the stop: /stats keeps working on it
    try:
        for _ in range(3):
            with connect(server) as s:
                s.sendall(REQUEST_11)
                read_response(s)

        def refused() -> int:
            """Of 20 new connections (spread over both workers' sockets by the kernel), how many were refused."""
            count = 0
            for _ in range(20):
                try:
                    socket.create_connection((server.host, server.port), timeout=5).close()
                except ConnectionRefusedError:
                    count += 1
                except ConnectionResetError:  # taken into a listener's queue as it closed: not refused, reset
                    pass
            return count

        wait_for(refused, lambda n: n == 20)
        kept.sendall(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b'"accepting": false' in read_response(kept)
    finally:
        kept.close()


def test_sigterm_ends_every_worker_and_exits_0():
    with ServerProcess(delay=30, extra_args=("--workers", "3")) as server:
        others = workers_of(server)[1:]
        assert len(others) == 2
        assert server.stop() == 0  # SIGTERM to worker 0
        assert not psutil.wait_procs(others, timeout=WORKERS_END_S)[1]


def test_a_worker_that_dies_ends_the_server_with_status_1():
    with ServerProcess(delay=30, extra_args=("--workers", "3")) as server:
        first, second, third = workers_of(server)
        second.kill()
        # 15 s: worker 0 sees its worker end at once (a pidfd); the rest stop in ~0.1 s, 5 s at most
        wait_for(server.returncode, lambda status: status is not None, deadline_s=15)
        assert server.stop() == 1
        assert not psutil.wait_procs([third], timeout=WORKERS_END_S)[1]
        assert f"worker pid {second.pid} ended on its own" in server.stderr_text()


def test_the_workers_end_with_a_parent_killed_outright():
    proc = subprocess.Popen([sys.executable, "-m", "harness.server", "--delay", "30", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        proc.stdout.readline()
        workers = psutil.Process(proc.pid).children()  # worker 0's children
        assert len(workers) == 1
        proc.kill()
        proc.wait(timeout=WORKERS_END_S)  # SIGKILL: at once
        assert not psutil.wait_procs(workers, timeout=WORKERS_END_S)[1]  # PR_SET_PDEATHSIG: SIGTERM to each
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_stalled_handshakes_are_counted_across_workers(start_slow_server):
    """/stall-handshakes?next=N at one worker: the server's next N handshakes stall, whichever worker takes them
    (a count each worker kept would stall fewer, or the ninth)."""
    server = start_slow_server(tls=True, delay=0, workers=2)
    stalled = 8  # 8 connections spread over 2 workers: all on one has odds 2 ** -7
    assert server.stall_handshakes(stalled) == {"stalling": stalled}
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    hellos = []
    try:
        for _ in range(stalled):
            raw = socket.create_connection((server.host, server.port), timeout=5)
            tls = context.wrap_socket(raw, server_hostname=server.host, do_handshake_on_connect=False)
            hellos.append(tls)
            tls.setblocking(False)
            with pytest.raises(ssl.SSLWantReadError):
                tls.do_handshake()  # the ClientHello goes out; the answer is awaited below
        # 0.5 s for all of them at once: the server would answer a ClientHello in ~1 ms
        answered, _, _ = select.select(hellos, [], [], 0.5)
        assert not answered, f"{len(answered)} of {stalled} stalled handshakes were answered"
    finally:
        for tls in hellos:
            tls.close()
    raw = socket.create_connection((server.host, server.port), timeout=5)
    with context.wrap_socket(raw, server_hostname=server.host) as sock:  # the next one is answered
        sock.sendall(REQUEST_11)
        assert read_response(sock).startswith(b"HTTP/1.1 200 OK")
    stats = server.stats()
    assert stats["tls_stalled"] == stalled and stats["tls_failures"] == 0


def test_a_port_another_workers_server_listens_on_is_in_use(capsys):
    """SO_REUSEPORT would let a second --workers server of the same user join the first one's port, and take half
    its connections: it is refused as any port in use is."""
    from harness.server.main import main as server_main

    with ServerProcess(delay=30, extra_args=("--workers", "2")) as first:
        assert server_main(["--port", str(first.port), "--workers", "2", "--delay", "0"]) == 2
        assert capsys.readouterr().err == f"harness.server: error: --port {first.port}: already in use on 127.0.0.1\n"


def test_sigterm_while_the_workers_start_ends_them_and_exits_0():
    """Worker 0 blocks SIGTERM from before its fork until its loop handles it: one that comes while the others
    start (right after the fork, before the ready line) stops the server as any SIGTERM does."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.server", "--delay", "30", "--workers", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        others = wait_for(lambda: psutil.Process(proc.pid).children(), lambda children: len(children) >= 1,
                          every_s=0.001)  # the first fork: ~0.1 s after the start; a worker serves ~0.1 s after it
        proc.terminate()
        assert proc.wait(timeout=WORKERS_END_S) == 0
        assert not psutil.wait_procs(others, timeout=WORKERS_END_S)[1]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
