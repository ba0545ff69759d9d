"""The sampler counts the right sockets, by state, to the right server only,
with either backend; and both backends see the same sockets."""
import os
import pickle
import struct
import socket
import subprocess
import sys
import types

import pytest

from harness.sampling import SocketCounter, netlink, owned
from harness.sampling.backends import Backend
from harness.sampling.counter import ClientSocket
from harness.sampling.owned import _netlink, sockets_of

from .waiting import wait_for


@pytest.fixture
def server(start_slow_server):
    return start_slow_server(delay=0.05)


@pytest.fixture(params=["netlink", "psutil"])
def backend(request):
    return request.param


@pytest.fixture
def counter_for(backend):
    """``counter_for(server, own_ports=())``: a SocketCounter on the backend under test that,
    as every experiment's does, leaves out TIME_WAITs already there (a new server can get
    a port whose previous owner's TIME_WAITs linger for 60 s)."""

    def make(server, own_ports=()):
        counter = SocketCounter(server.host, server.port, own_ports, backend, server_side=True)
        counter.ignore_existing_time_wait()
        return counter

    return make


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


def test_counts_established_on_both_sides(server, counter_for):
    counter = counter_for(server)
    socks = open_idle(server, 3)
    try:
        snap = counter.snapshot()
        assert (snap.established, snap.server_established) == (3, 3)
        ports = {s.getsockname()[1] for s in socks}
        assert {c.local_port for c in snap.sockets} == ports
    finally:
        for s in socks:
            s.close()


def test_client_close_leaves_time_wait(server, counter_for):
    counter = counter_for(server)
    socks = open_idle(server, 2)
    socks[0].close()  # the client closes first, so the TIME_WAIT is on its side
    snap = wait_for(counter.snapshot, lambda s: s.time_wait == 1)
    assert snap.established == 1
    socks[1].close()


def test_server_close_leaves_close_wait(server, counter_for):
    counter = counter_for(server)
    s = socket.create_connection((server.host, server.port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: the server closes
    snap = wait_for(counter.snapshot, lambda snap: snap.close_wait == 1)
    assert snap.established == 0
    s.close()


def test_own_ports_are_left_out(server, counter_for):
    own = set()
    counter = counter_for(server, own)
    socks = open_idle(server, 2)
    own.add(socks[0].getsockname()[1])
    snap = counter.snapshot()
    assert (snap.established, snap.server_established) == (1, 1)
    for s in socks:
        s.close()


def test_stats_calls_are_not_counted(server, counter_for):
    counter = counter_for(server, server.own_ports)
    server.stats()
    snap = wait_for(counter.snapshot, lambda s: True)
    assert snap.sockets == ()


def test_another_servers_sockets_are_not_counted(server, start_slow_server, counter_for):
    other = start_slow_server(delay=0.05)
    counter = counter_for(server)
    socks = open_idle(other, 2)
    assert counter.snapshot().established == 0
    assert counter_for(other).snapshot().established == 2
    for s in socks:
        s.close()


def test_time_wait_from_before_is_ignored(server, counter_for):
    # By our own socket's port, not by counts: any process may connect to the server meanwhile (a loaded soak's
    # other suite did, to a port its dead server had had), and an earlier owner's TIME_WAIT may end its 60 s.
    counter = counter_for(server)
    counter.ignore_existing_time_wait()  # from an earlier owner of this port, if any
    socks = open_idle(server, 1)
    ours = (socks[0].getsockname()[1], "TIME_WAIT")
    socks[0].close()
    wait_for(counter.snapshot, lambda s: ours in s.sockets)  # counted: it came after the baseline
    assert counter.ignore_existing_time_wait() >= 1 and ours not in counter.snapshot().sockets


def test_a_socket_closing_before_the_baseline_is_left_out_once_in_time_wait(counter_for):
    """A socket closed by the client whose server has not closed its side yet (FIN_WAIT2: a
    loaded server, or an answer still due) reaches TIME_WAIT after the baseline: still
    not the experiment's (it once failed the test above in a loaded soak)."""
    # a listener of the test's own: its side closes when the test says, however slow a scan is (with the slow
    # server's 0.3 s delay, a psutil scan on a loaded machine once saw the socket only once in TIME_WAIT)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = types.SimpleNamespace(host="127.0.0.1", port=listener.getsockname()[1])
        baseline, plain = counter_for(server), counter_for(server)
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            port = s.getsockname()[1]
            accepted, _ = listener.accept()
            s.shutdown(socket.SHUT_WR)  # FIN_WAIT2 until the server's side closes
            wait_for(plain.snapshot, lambda snap: (port, "FIN_WAIT2") in snap.sockets)
            baseline.ignore_existing_time_wait()
            accepted.close()
            while s.recv(65536):  # the server's close: TIME_WAIT here
                pass
    wait_for(plain.snapshot, lambda snap: (port, "TIME_WAIT") in snap.sockets)
    assert (port, "TIME_WAIT") not in baseline.snapshot().sockets


def test_backends_see_the_same_sockets(server, start_slow_server):
    """The cross-check: ESTABLISHED, TIME_WAIT and CLOSE_WAIT sockets, the server's
    side, and another server's sockets beside them, counted alike by both."""
    other = start_slow_server(delay=0.05)
    netlink = SocketCounter(server.host, server.port, backend="netlink", server_side=True)
    psutil_counter = SocketCounter(server.host, server.port, backend="psutil", server_side=True)
    for counter in (netlink, psutil_counter):  # an earlier owner's TIME_WAITs on this port (another worker's) linger
        counter.ignore_existing_time_wait()
    socks = open_idle(server, 4) + open_idle(other, 2)
    socks[0].close()  # TIME_WAIT on the client side
    lingering = socket.create_connection((server.host, server.port), timeout=5)
    lingering.sendall(b"GET / HTTP/1.0\r\n\r\n")  # the server closes it: CLOSE_WAIT here
    try:
        # the server's side too: a loaded server closes its side of the closed socket a while after (it once read
        # 4 ESTABLISHED there for one backend and 3 for the other)
        first = wait_for(netlink.snapshot, lambda s: (s.time_wait, s.close_wait, s.established,
                                                      s.server_established) == (1, 1, 3, 3))
        assert psutil_counter.snapshot() == first == netlink.snapshot()  # nothing moves: the same sockets, in order
        assert first.server_established == 3
    finally:
        for s in socks[1:] + [lingering]:
            s.close()


def test_auto_takes_netlink_on_linux(server):
    assert SocketCounter(server.host, server.port).backend.name == "netlink"


def test_server_side_is_counted_only_when_asked(server, backend):
    socks = open_idle(server, 2)
    try:
        snap = SocketCounter(server.host, server.port, backend=backend).snapshot()
        assert (snap.established, snap.server_established) == (2, None)
    finally:
        for s in socks:
            s.close()


def test_an_answer_not_yet_read_is_seen_until_the_client_reads_it(server, backend):
    """netlink reads each socket's receive queue: an answer that arrived and was not
    read marks its socket unread, and reading it clears the mark. psutil cannot say."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    try:
        port = sock.getsockname()[1]
        counter = SocketCounter(server.host, server.port, backend=backend)
        assert counter.snapshot().unread == (frozenset() if backend == "netlink" else None)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        if backend == "psutil":
            assert counter.snapshot().unread is None
            return
        wait_for(lambda: counter.snapshot().unread, lambda unread: unread == {port})  # the answer arrived
        data = b""
        while not data.endswith(b"ok\n"):
            data += sock.recv(4096)
        assert counter.snapshot().unread == frozenset()
    finally:
        sock.close()


PORT_TRIES = 10  # a port the kernel gave on 127.0.0.1 is taken on ::1 too only by chance: 10 such in a row, never


@pytest.fixture
def held_pairs():
    """A listener, a client and its accepted end on 127.0.0.1 and on ::1, and a client whose peer closed (its
    socket in CLOSE_WAIT), all held by this process. The client on ::1 has the port of the one on 127.0.0.1, as
    the kernel may choose (a port is taken per address: CI once drew 56934 for both)."""
    held: list[socket.socket] = []
    for _ in range(PORT_TRIES):
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            listener = socket.socket(family)
            held.append(listener)
            listener.bind((host, 0))
            listener.listen()
            client = socket.socket(family)
            held.append(client)
            if len(held) > 2:
                try:
                    client.bind((host, held[1].getsockname()[1]))
                except OSError:  # that port is taken on ::1 (a port is taken per address): another pair
                    break
            client.connect(listener.getsockname()[:2])
            accepted, _ = listener.accept()
            held.append(accepted)
        if len(held) == 6:
            break
        for s in held:
            s.close()
        held = []
    assert len(held) == 6, f"no port free on both 127.0.0.1 and ::1 in {PORT_TRIES} tries"
    closing = socket.create_connection(held[0].getsockname())
    peer, _ = held[0].accept()
    peer.close()
    wait_for(lambda: closing.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0], lambda state: state == 8)
    held += [closing]
    yield held
    for s in held:
        s.close()


def test_what_this_process_holds_is_read_from_its_descriptors_as_a_dump_reads_it(held_pairs, monkeypatch):
    dumps = []
    real_dump = netlink.dump_all
    monkeypatch.setattr(netlink, "dump_all", lambda family, *a, **k: dumps.append(family) or real_dump(family, *a, **k))
    own, own_listening = sockets_of()
    assert dumps == []  # read through the descriptors
    dumped, dumped_listening = _netlink((os.getpid(),))
    assert socket.AF_INET6 in dumps and socket.AF_INET in dumps and netlink.in_use(socket.AF_INET6)
    assert sorted(own) == sorted(dumped) and own_listening == dumped_listening
    ports = {s.getsockname()[1]: s for s in held_pairs}
    states = {o.local: o.state for o in own if o.local_port in ports}  # by address and port: two share a port
    assert sorted(states.values()) == ["CLOSE_WAIT"] + ["ESTABLISHED"] * 4, own
    assert {o.local for o in own if o.local_port in ports} >= {"127.0.0.1:" + str(held_pairs[1].getsockname()[1]),
                                                               f"[::1]:{held_pairs[4].getsockname()[1]}"}
    assert {held_pairs[0].getsockname()[1], held_pairs[3].getsockname()[1]} <= own_listening


def test_a_process_holding_no_socket_is_not_dumped(monkeypatch):
    dumps = []
    monkeypatch.setattr(netlink, "dump_all", lambda family, *a, **k: dumps.append(family) or iter(()))
    none = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert sockets_of(none.pid) == ([], set()) and dumps == []
    finally:
        none.stdin.close()
        none.wait(timeout=10)


def test_a_sockstat_that_cannot_be_read_means_dump(monkeypatch):
    monkeypatch.setitem(netlink._SOCKSTAT, socket.AF_INET6, ("/nonexistent/sockstat6", b"TCP6: inuse "))
    assert netlink.in_use(socket.AF_INET6)
    monkeypatch.setitem(netlink._SOCKSTAT, socket.AF_INET6, ("/proc/net/sockstat6", b"NO SUCH LINE "))
    assert netlink.in_use(socket.AF_INET6)


def test_a_socket_still_connecting_is_seen_with_its_remote_end():
    """A connecting socket has no peer to read from its descriptor yet: the dump names it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # one connection fills its queue; the kernel then drops further SYNs: SYN_SENT stays
    first = socket.create_connection(listener.getsockname())
    waiting = socket.socket()
    waiting.setblocking(False)
    try:
        wait_for(lambda: len([s for s in sockets_of()[0] if s.remote_port == listener.getsockname()[1]]),
                 lambda n: n >= 1)
        waiting.connect_ex(listener.getsockname())
        local = f"127.0.0.1:{waiting.getsockname()[1]}"
        owned = wait_for(lambda: {s.local: s for s in sockets_of()[0]}, lambda o: local in o)
        assert owned[local].state == "SYN_SENT" and owned[local].remote_port == listener.getsockname()[1], owned
    finally:
        for s in (waiting, first, listener):
            s.close()


def test_a_process_holding_many_sockets_is_dumped_once_instead(held_pairs, monkeypatch):
    """Reading each socket costs more than one dump past OWN_READ_AT_MOST: the dump is made, with the same result."""
    read_through_descriptors, _ = sockets_of()
    dumps = []
    real_dump = netlink.dump_all
    monkeypatch.setattr(netlink, "dump_all", lambda family, *a, **k: dumps.append(family) or real_dump(family, *a, **k))
    monkeypatch.setattr(owned, "OWN_READ_AT_MOST", len(held_pairs) - 1)  # fewer than this test's own sockets alone
    dumped, _ = sockets_of()
    assert socket.AF_INET in dumps, "a process past the bound was read socket by socket, not dumped"
    ports = {s.getsockname()[1] for s in held_pairs}
    assert sorted(o for o in dumped if o.local_port in ports) == sorted(
        o for o in read_through_descriptors if o.local_port in ports)


def test_a_snapshots_sockets_are_sorted_only_when_looked_at():
    """Most samples are only counted: the sort of their sockets (2.6 ms at 10,000) waits until they are read."""
    counter = SocketCounter("127.0.0.1", 1, backend="netlink")
    snap = counter.count([(40002, "TIME_WAIT", 0), (40003, "ESTABLISHED", 0), (40001, "ESTABLISHED", 0)], [])
    assert (snap.established, snap.time_wait, len(snap.sockets)) == (2, 1, 3)
    assert snap.sockets._pairs is None, "counting a sample sorted its sockets"
    assert snap.sockets == ((40001, "ESTABLISHED"), (40002, "TIME_WAIT"), (40003, "ESTABLISHED"))
    assert snap.sockets[0] == ClientSocket(40001, "ESTABLISHED") and snap.sockets[0].local_port == 40001
    assert [s.local_port for s in snap.sockets] == [40001, 40002, 40003] and list(snap.sockets[1:]) == [
        (40002, "TIME_WAIT"), (40003, "ESTABLISHED")]
    assert (40002, "TIME_WAIT") in snap.sockets and (40002, "ESTABLISHED") not in snap.sockets
    same = counter.count([(40001, "ESTABLISHED", 0), (40003, "ESTABLISHED", 0), (40002, "TIME_WAIT", 0)], [])
    assert same == snap and hash(same) == hash(snap)  # scanned in another order: the same sample
    copy = pickle.loads(pickle.dumps(snap))  # as pytest-xdist's workers send results
    assert copy == snap and copy.sockets == snap.sockets and snap.sockets != ((40001, "ESTABLISHED"),)


class _Scripted(Backend):
    """Scans that return what the test says, one after another."""

    name = "scripted"

    def __init__(self, scans) -> None:
        self.scans = list(scans)

    def scan(self, targets):
        return [(self.scans.pop(0), []) for _ in targets]


def test_a_lingering_time_wait_port_taken_by_a_new_connection_is_counted_again():
    """On loopback the kernel gives a new connect the local port of a TIME_WAIT still lingering from the port's
    previous owner (tcp_tw_reuse): once this client's own socket is seen on it, its TIME_WAIT is the client's."""
    counter = SocketCounter("127.0.0.1", 1, backend=_Scripted([
        [(40001, "TIME_WAIT"), (40002, "TIME_WAIT")],  # the baseline: a previous owner's
        [(40001, "ESTABLISHED"), (40002, "TIME_WAIT")],  # 40001 taken by a new connection of this client
        [(40001, "TIME_WAIT"), (40002, "TIME_WAIT")],  # which it closed
    ]))
    assert counter.ignore_existing_time_wait() == 2
    taken = counter.snapshot()
    assert (taken.established, taken.time_wait) == (1, 0)
    assert counter.snapshot().time_wait == 1, "the new connection's TIME_WAIT was left out as the old owner's"


class _Datagrams:
    """A netlink socket's stand-in: hands out the datagrams given, one a recv."""

    def __init__(self, datagrams: list[bytes]) -> None:
        self.left = iter(datagrams)

    def recv(self, size: int) -> bytes:
        return next(self.left)


def _diag_message(seq: int, state: int, sport: int, dport: int, unread: int = 0, attributes: int = 8) -> bytes:
    """One sock_diag answer as the kernel lays it out: nlmsghdr, inet_diag_msg, ``attributes`` bytes after it."""
    body = (struct.pack("=BBBB", socket.AF_INET, state, 0, 0) + struct.pack(">HH", sport, dport) + bytes(44)
            + struct.pack("=IIIII", 0, unread, 0, 0, 0) + bytes(attributes))
    return struct.pack("=IHHII", 16 + len(body), netlink.SOCK_DIAG_BY_FAMILY, 2, seq, 0) + body


def _done(seq: int) -> bytes:
    return struct.pack("=IHHIIi", 20, netlink.NLMSG_DONE, 2, seq, 0, 0)


def test_datagrams_of_one_length_and_of_several_read_alike(monkeypatch):
    """A datagram whose messages are all one length is read in one pass (_read_uniform); one that mixes lengths,
    or carries another dump's message or the end, is read message by message: the same sockets either way."""
    port = 8080
    uniform = b"".join(_diag_message(1, 1, 40000 + i, port, unread=i % 3) for i in range(50))
    mixed = (_diag_message(1, 6, 41000, port, attributes=0) + _diag_message(1, 1, 41001, port)
             + _diag_message(1, 1, port, 50000) + _diag_message(7, 1, 41002, port))  # seq 7: another dump's
    late = b"".join(_diag_message(1, 8, 42000 + i, port) for i in range(3)) + _diag_message(7, 1, 42009, port)
    datagrams = [uniform, mixed, late, _done(1)]
    fast = []
    real = netlink._read_uniform
    monkeypatch.setattr(netlink, "_read_uniform", lambda *a: fast.append(real(*a)) or fast[-1])
    clients, servers = netlink._read_dump(_Datagrams(datagrams), 1, port)
    assert fast == [True, False, False, False]  # the late other-dump message sends the third one back, read in part
    monkeypatch.setattr(netlink, "_read_uniform", lambda *a: False)
    assert netlink._read_dump(_Datagrams(datagrams), 1, port) == (clients, servers)
    assert clients == ([(40000 + i, "ESTABLISHED", i % 3) for i in range(50)]
                       + [(41000, "TIME_WAIT", 0), (41001, "ESTABLISHED", 0)]
                       + [(42000 + i, "CLOSE_WAIT", 0) for i in range(3)])
    assert servers == [("ESTABLISHED", 50000)]


class _Recording:
    """A netlink socket that keeps a copy of every datagram it hands out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.datagrams = sock, []

    def send(self, data: bytes) -> int:
        return self.sock.send(data)

    def recv(self, size: int) -> bytes:
        self.datagrams.append(self.sock.recv(size))
        return self.datagrams[-1]

    def close(self) -> None:
        self.sock.close()


def test_a_real_dump_is_read_in_one_pass_a_datagram_and_alike(server, monkeypatch):
    """The kernel's own datagrams take the one-pass read, and it finds what reading the same datagrams
    message by message finds."""
    held = [socket.create_connection((server.host, server.port)) for _ in range(300)]  # more than one datagram
    try:
        wait_for(lambda: SocketCounter(server.host, server.port, backend="netlink", server_side=True).snapshot(),
                 lambda s: s.server_established == 300)
        taken, opened = [], []
        real_read, real_open = netlink._read_uniform, netlink._open
        monkeypatch.setattr(netlink, "_read_uniform", lambda *a: taken.append(real_read(*a)) or taken[-1])
        monkeypatch.setattr(netlink, "_open", lambda: opened.append(_Recording(real_open())) or opened[-1])
        clients, servers = netlink.tcp_sockets(server.host, server.port, server_side=True)
        assert taken.count(True) >= 2, taken  # 600 sockets: two datagrams at least, each read in one pass
        monkeypatch.setattr(netlink, "_read_uniform", lambda *a: False)
        assert netlink._read_dump(_Datagrams(opened[0].datagrams), 1, server.port) == (clients, servers)
        # ESTABLISHED only: a TIME_WAIT of the port's previous owner (another worker's server) may linger
        assert sum(state == "ESTABLISHED" for _, state, _ in clients) == 300
        assert sum(state == "ESTABLISHED" for state, _ in servers) == 300
    finally:
        for s in held:
            s.close()
