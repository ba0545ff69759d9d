"""The sampler counts the right sockets, by state, to the right server only."""
import socket

import pytest

from harness.sampler import SocketCounter

from .waiting import wait_for


@pytest.fixture
def server(start_slow_server):
    return start_slow_server(delay=0.05)


def open_idle(server, n):
    """n keep-alive connections that have each completed one request."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((server.host, server.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"ok\n"):
            data += s.recv(4096)
        socks.append(s)
    return socks


def test_counts_established_on_both_sides(server):
    counter = SocketCounter(server.host, server.port)
    socks = open_idle(server, 3)
    try:
        snap = counter.snapshot()
        assert (snap.established, snap.server_established) == (3, 3)
        ports = {s.getsockname()[1] for s in socks}
        assert {c.local_port for c in snap.sockets} == ports
    finally:
        for s in socks:
            s.close()


def test_client_close_leaves_time_wait(server):
    counter = SocketCounter(server.host, server.port)
    socks = open_idle(server, 2)
    socks[0].close()  # the client closes first, so the TIME_WAIT is on its side
    snap = wait_for(counter.snapshot, lambda s: s.time_wait == 1)
    assert snap.established == 1
    socks[1].close()


def test_server_close_leaves_close_wait(server):
    counter = SocketCounter(server.host, server.port)
    s = socket.create_connection((server.host, server.port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: the server closes
    snap = wait_for(counter.snapshot, lambda snap: snap.close_wait == 1)
    assert snap.established == 0
    s.close()


def test_own_ports_are_left_out(server):
    own = set()
    counter = SocketCounter(server.host, server.port, own)
    socks = open_idle(server, 2)
    own.add(socks[0].getsockname()[1])
    snap = counter.snapshot()
    assert (snap.established, snap.server_established) == (1, 1)
    for s in socks:
        s.close()


def test_stats_calls_are_not_counted(server):
    counter = SocketCounter(server.host, server.port, server.own_ports)
    server.stats()
    snap = wait_for(counter.snapshot, lambda s: True)
    assert snap.sockets == ()


def test_another_servers_sockets_are_not_counted(server, start_slow_server):
    other = start_slow_server(delay=0.05)
    counter = SocketCounter(server.host, server.port)
    socks = open_idle(other, 2)
    assert counter.snapshot().established == 0
    assert SocketCounter(other.host, other.port).snapshot().established == 2
    for s in socks:
        s.close()


def test_time_wait_from_before_is_ignored(server):
    socks = open_idle(server, 1)
    socks[0].close()
    counter = SocketCounter(server.host, server.port)
    wait_for(counter.snapshot, lambda s: s.time_wait == 1)
    assert counter.ignore_existing_time_wait() == 1
    assert counter.snapshot().time_wait == 0
