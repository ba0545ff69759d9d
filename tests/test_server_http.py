"""The slow server speaks HTTP/1.1 as curl, ab, wrk, Go and browsers expect:
100 Continue, an answer after a half-close, a header timeout, 400 for what is
not HTTP/1.x, one listening socket whatever ``--host`` names, and a warning
when it listens beyond loopback."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading

import psutil
import pytest

from harness.server.main import beyond_loopback
from harness.server.main import main as server_main
from harness.server.protocol import CONNECTING_S, PROBE_CHECKS, PROBE_EVERY_S, PROBE_LATER_EVERY_S, SlowServer

from .test_server import REQUEST_11, connect, read_response
from .test_server_faults import read_until_closed
from .tools import tool
from .waiting import wait_for
from .server_loops import LOOPS, run_on, start_slow_server  # noqa: F401  (each test on every event loop)

HEADER_TIMEOUT_S = "0.3"  # short, so a test waits for it briefly; the default is a minute


def test_expect_100_continue_is_answered_before_the_body(start_slow_server):
    server = start_slow_server(delay=0.0)
    with connect(server) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # sent while the body has not come
        s.sendall(b"abc")
        assert read_response(s).startswith(b"HTTP/1.1 200 OK")


def test_curl_gets_100_continue(start_slow_server, tmp_path):
    curl = tool("curl", "curl")
    server = start_slow_server(delay=0.0)
    body = tmp_path / "body"
    body.write_bytes(b"x" * 2048)
    done = subprocess.run([curl, "-sv", "-H", "Expect: 100-continue", "--data-binary", f"@{body}", server.url],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert "< HTTP/1.1 100 Continue" in done.stderr  # curl did not have to wait out its own second


def test_a_half_closed_client_gets_its_answer_then_the_close(start_slow_server):
    server = start_slow_server(delay=0.1)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        s.shutdown(socket.SHUT_WR)  # HTTP allows it: the request is complete
        received = read_until_closed(s)
    assert received.endswith(b"\r\n\r\nok\n") and b"HTTP/1.1 200 OK" in received, received
    stats = wait_for(server.stats, lambda st: st["requests_served"] == 1)
    assert stats["hung_up_early"] == 0


def test_a_client_that_closes_is_still_a_hang_up_at_once(start_slow_server):
    server = start_slow_server(delay=30.0)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        wait_for(server.stats, lambda st: st["active_requests"] == 1)
    # 2 s: the server's probe answers within its second of checks; far less than the 30 s delay
    stats = wait_for(server.stats, lambda st: st["hung_up_early"] == 1, deadline_s=2.0)
    assert stats["active_requests"] == 0 and stats["requests_served"] == 0


def test_a_half_closed_client_that_closes_late_is_still_a_hang_up(start_slow_server):
    """FIN after the request, then the close only after the server's quick checks (1 s) are
    over: still noticed, by the slower checks that go on while the request is pending."""
    server = start_slow_server(delay=30.0)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # the server's probe: the client is not gone
        # not synchronisation: the time that passes is what is tested (a close later than the quick checks)
        threading.Event().wait(PROBE_CHECKS * PROBE_EVERY_S + 0.2)
        assert server.stats()["hung_up_early"] == 0
    # the close sent no RST (nothing was left unread); the next slower check's 1xx draws one, seen at the check
    # after it: two intervals, and 2 s more for a busy machine
    stats = wait_for(server.stats, lambda st: st["hung_up_early"] == 1, deadline_s=2 * PROBE_LATER_EVERY_S + 2.0)
    assert stats["active_requests"] == 0 and stats["open_connections"] == 1  # the harness's /stats connection


def test_a_connection_counts_in_flight_from_its_accept(start_slow_server):
    """A client holds its socket from its connect; on a busy machine its request comes
    later. The peak in flight counts such a connection too, for CONNECTING_S at most."""
    server = start_slow_server(delay=30.0)
    with connect(server) as quiet, connect(server) as asking:
        wait_for(server.stats, lambda st: st["connecting"] == 2)
        asking.sendall(REQUEST_11)
        stats = wait_for(server.stats, lambda st: st["active_requests"] == 1)
        assert (stats["connecting"], stats["peak_in_flight"], stats["peak_active_requests"]) == (1, 2, 1)
        # the quiet one stops counting after CONNECTING_S; 2 s more for a busy machine
        stats = wait_for(server.stats, lambda st: st["connecting"] == 0, deadline_s=CONNECTING_S + 2.0)
        assert stats["peak_in_flight"] == 2 and stats["active_requests"] == 1
        quiet.sendall(REQUEST_11)  # counted now as a request, not again as a connection
        stats = wait_for(server.stats, lambda st: st["active_requests"] == 2)
        assert (stats["connecting"], stats["peak_in_flight"]) == (0, 2)


def test_a_connection_that_never_sends_a_head_is_closed(start_slow_server):
    server = start_slow_server(delay=0.0, header_timeout=HEADER_TIMEOUT_S)
    with connect(server) as silent, connect(server) as partial:
        partial.sendall(b"GET / HTTP/1.1\r\nHo")
        assert read_until_closed(silent) == b""
        assert read_until_closed(partial).startswith(b"HTTP/1.1 408 Request Timeout")
    stats = server.stats()
    assert stats["header_timeouts"] == 2 and stats["requests_received"] == 0


def test_a_kept_alive_connection_may_idle_past_the_header_timeout(start_slow_server):
    """The timeout is for a head under way or a connection that never sent one; a pooled
    connection idling between requests is left alone."""
    server = start_slow_server(delay=0.0, header_timeout=HEADER_TIMEOUT_S)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        read_response(s)
        # a timed-out neighbour proves the timeout has passed since this connection's answer
        with connect(server) as neighbour:
            assert read_until_closed(neighbour) == b""
        s.sendall(REQUEST_11)
        assert read_response(s).startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("data", [b"GET /\r\n", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", b"\x16\x03\x01\x00\x05hello",
                                  b"GET / HTTP/1.1 extra\r\n"],
                         ids=["http-0.9", "http-2.0", "tls-hello", "bad-line"])
def test_what_cannot_be_http_1_is_400_and_closed(start_slow_server, data):
    server = start_slow_server(delay=0.0)
    with connect(server) as s:
        s.sendall(data)
        received = read_until_closed(s)
    assert received.startswith(b"HTTP/1.1 400 Bad Request") and b"Connection: close" in received, received
    assert server.stats()["bad_requests"] == 1


@pytest.mark.parametrize("query", ["delay=1e9", "delay=-1", "delay=nan", "fail=xyz"])
def test_query_values_out_of_range_are_400(start_slow_server, query):
    server = start_slow_server(delay=0.0)
    with connect(server) as s:
        s.sendall(f"GET /?{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert read_response(s).startswith(b"HTTP/1.1 400 Bad Request")


def test_a_target_that_cannot_be_split_is_400(start_slow_server):
    server = start_slow_server(delay=0.0)
    with connect(server) as s:
        s.sendall(b"GET //[ HTTP/1.1\r\nHost: t\r\n\r\n")  # urlsplit: an IPv6 host never closed
        assert read_response(s).startswith(b"HTTP/1.1 400 Bad Request")
        s.sendall(REQUEST_11)  # and the connection still serves
        assert read_response(s).startswith(b"HTTP/1.1 200 OK")


def test_an_empty_host_is_refused(capsys):
    assert server_main(["--host", ""]) == 2
    assert capsys.readouterr().err == "harness.server: error: --host '': give an address to listen on, e.g. 127.0.0.1\n"


def test_a_name_with_several_addresses_gets_one_listening_socket(start_slow_server):
    server = start_slow_server(host="localhost")  # 127.0.0.1 and, where configured, ::1
    listening = [c for c in psutil.Process(server.pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    assert len(listening) == 1 and listening[0].laddr.port == server.port, listening


@pytest.mark.parametrize("address, beyond", [("127.0.0.1", False), ("127.0.0.4", False), ("::1", False),
                                             ("0.0.0.0", True), ("::", True), ("192.0.2.7", True),
                                             ("fe80::1%lo", True)])
def test_listening_beyond_loopback_is_told(address, beyond):
    assert beyond_loopback(address) is beyond


def test_no_warning_on_loopback():
    """On a loopback address nothing is said; ``beyond_loopback`` above decides for the others
    (a test binds no address that other machines could reach)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.server", "--delay", "0", "--host", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("{")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "warning" not in err


@pytest.mark.parametrize("loop_name", LOOPS)
def test_accepted_sockets_send_without_nagle(loop_name):
    """The server sets no TCP_NODELAY itself: asyncio and uvloop set it on every TCP transport they make, so an
    answer is never held back waiting for an ACK (the ~44 ms a reused request once cost). Checked on the
    connections the server accepts, on each loop it may run."""
    async def scenario() -> int:
        server = SlowServer("127.0.0.1", 0, 0.0, 3600.0)
        await server.start()
        loop = asyncio.get_running_loop()
        client = socket.create_connection((server.address, server.port))
        client.setblocking(False)
        try:
            deadline = loop.time() + 5.0  # the accept: microseconds; 5 s for a loaded machine
            while not server.connections and loop.time() < deadline:
                await asyncio.sleep(0.01)  # the loop's own turn: the accept happens on it
            (accepted,) = server.connections
            return accepted.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            client.close()
            server.stop()

    assert run_on(loop_name, scenario()) != 0
