"""The slow server's fault modes: each misbehaves exactly as named, and only when asked."""
import socket

import pytest

from harness.faces.pytest_plugin import SERVERS_KEY

from .test_server import REQUEST_11, connect, read_response
from .waiting import wait_for
from .server_loops import start_slow_server  # noqa: F401  (each test on every event loop)


@pytest.fixture(autouse=True)
def _counters_never_below_zero(request, start_slow_server):
    """After every fault test, every counter of every server it started is >= 0 (set up after the
    servers' factory, so checked before they are stopped)."""
    yield
    for server in request.node.stash.get(SERVERS_KEY, []):
        if server.alive():
            try:
                stats = server.stats()
            except ConnectionRefusedError:  # --stop-accepting-after closed its listener on purpose: unreadable
                continue
            assert all(v >= 0 for v in stats.values() if not isinstance(v, bool)), stats


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (EOF); raises ConnectionResetError on RST."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def refused(server) -> bool:
    try:
        connect(server).close()
    except ConnectionRefusedError:
        return True
    return False


def test_reset_mid_response_sends_part_of_the_head_then_rst(start_slow_server):
    server = start_slow_server(delay=0.05, fault="reset-mid-response")
    with connect(server) as s:
        s.sendall(REQUEST_11)
        received = b""
        with pytest.raises(ConnectionResetError):
            while True:
                chunk = s.recv(4096)
                assert chunk, "closed with FIN, not RST"
                received += chunk
    assert received == b"HTTP/1.1 200 OK\r\nContent-Type: text/pl"
    assert server.stats()["resets_sent"] == 1


def test_truncate_promises_more_than_it_sends(start_slow_server):
    server = start_slow_server(delay=0.05, fault="truncate")
    with connect(server) as s:
        s.sendall(REQUEST_11)
        data = read_until_closed(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 100" in head and body == b"ok\n"
    assert server.stats()["truncated_sent"] == 1


def test_hang_never_answers_until_the_client_leaves(start_slow_server):
    server = start_slow_server(delay=0.05, fault="hang")
    s = connect(server)
    s.sendall(REQUEST_11)
    stats = wait_for(server.stats, lambda st: st["hanging"] == 1)
    s.settimeout(0.5)  # ten times the delay: an answer would have come long before
    with pytest.raises(TimeoutError):
        s.recv(4096)
    assert stats["requests_served"] == 0
    s.close()
    stats = wait_for(server.stats, lambda st: st["hung_up_early"] == 1)
    assert stats["hanging"] == 0 and stats["active_requests"] == 0


def test_fault_every_nth_request_only(start_slow_server):
    server = start_slow_server(delay=0.01, fault="truncate", every=3)
    outcomes = []
    for _ in range(6):
        with connect(server) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            outcomes.append(b"Content-Length: 100" in read_until_closed(s))
    assert outcomes == [False, False, True, False, False, True]


def test_per_request_fault(start_slow_server):
    server = start_slow_server(delay=0.01)
    with connect(server) as s:
        s.sendall(b"GET /?fault=truncate HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"Content-Length: 100" in read_until_closed(s)
    with connect(server) as s:
        s.sendall(b"GET /?fault=melt HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 400")


def test_idle_close_closes_idle_keep_alive_connections(start_slow_server):
    server = start_slow_server(delay=0.01, idle_close=0.2)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        assert read_response(s).startswith(b"HTTP/1.1 200")
        s.settimeout(5)  # deadline: the server closes after 0.2 s idle
        assert s.recv(4096) == b""  # FIN from the server
    assert server.stats()["idle_closed"] == 1


def test_idle_close_spares_a_busy_connection(start_slow_server):
    server = start_slow_server(delay=0.3, idle_close=0.1)  # the request outlasts the idle limit
    with connect(server) as s:
        s.sendall(REQUEST_11)
        assert read_response(s).startswith(b"HTTP/1.1 200")


def test_stop_accepting_refuses_new_connections_and_keeps_open_ones(start_slow_server):
    server = start_slow_server(delay=0.01, stop_accepting_after=1)
    with connect(server) as kept:
        kept.sendall(REQUEST_11)
        assert read_response(kept).startswith(b"HTTP/1.1 200")
        assert wait_for(lambda: refused(server), bool), "still accepting"  # closes right after the first answer
        kept.sendall(REQUEST_11)  # the open connection still works
        assert read_response(kept).startswith(b"HTTP/1.1 200")
