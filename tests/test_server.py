"""The slow server on its own: protocol, counters, hang-ups, flags and signals."""
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.server import ServerProcess
from harness.server.main import main as server_main

from .waiting import alive, wait_for
from .server_loops import start_slow_server  # noqa: F401  (each test on every event loop)

ROOT = Path(__file__).resolve().parent.parent
REQUEST_11 = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def read_response(sock: socket.socket) -> bytes:
    """Read one response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def fast_server(start_slow_server):
    return start_slow_server(delay=0.05)


def connect(server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def test_ready_line_reports_a_real_port():
    proc = subprocess.Popen([sys.executable, "-m", "harness.server", "--delay", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"host", "port", "pid"} and info["pid"] == proc.pid and info["port"] > 0
        with socket.create_connection(("127.0.0.1", info["port"]), timeout=5) as s:
            s.sendall(REQUEST_11)
            assert read_response(s).startswith(b"HTTP/1.1 200")
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_http11_keeps_the_connection_for_the_next_request(fast_server):
    with connect(fast_server) as s:
        for _ in range(3):
            s.sendall(REQUEST_11)
            response = read_response(s)
            assert response.startswith(b"HTTP/1.1 200 OK")
            assert b"Connection: keep-alive" in response and b"Content-Length: 3" in response
            assert response.endswith(b"ok\n")
    stats = fast_server.stats()
    assert stats["requests_served"] == 3
    assert stats["connections_accepted"] - fast_server.stats_connections == 1


def test_http10_keep_alive_is_honoured(fast_server):
    with connect(fast_server) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            assert b"Connection: keep-alive" in read_response(s)
    assert fast_server.stats()["connections_accepted"] == 2  # ours + the harness's one /stats connection


def test_http10_without_keep_alive_is_closed(fast_server):
    with connect(fast_server) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b"Connection: close" in read_response(s)
        assert s.recv(10) == b""  # the server closed its side


def test_connection_close_is_honoured(fast_server):
    with connect(fast_server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert b"Connection: close" in read_response(s)
        assert s.recv(10) == b""


def test_pipelined_requests_are_answered_in_order(fast_server):
    with connect(fast_server) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nHEAD /b HTTP/1.1\r\nHost: t\r\n\r\n")
        first = read_response(s)
        assert first.endswith(b"ok\n")
        s.settimeout(5)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 200")  # HEAD: headers only
    assert fast_server.stats()["requests_served"] == 2


def test_waits_the_delay(start_slow_server):
    server = start_slow_server(delay=0.3)
    with connect(server) as s:
        started = time.monotonic()
        s.sendall(REQUEST_11)
        read_response(s)
        # 2 ms: uvloop's clock (libuv's) is whole milliseconds, cached at each loop turn, so the server's
        # "arrived" can read up to ~1 ms early and its timer fire ~1 ms early (measured once: 0.29995 s)
        assert time.monotonic() - started >= 0.3 - 0.002


def test_a_pipelined_request_waits_its_delay_after_the_one_before(start_slow_server):
    """Requests sent together on one connection are worked through one at a time: the second waits its delay from
    the first's answer, though the kernel says it arrived with the first."""
    server = start_slow_server(delay=0.3)
    with connect(server) as s:
        started = time.monotonic()
        s.sendall(REQUEST_11 + REQUEST_11)
        read_response(s)
        read_response(s)
        # two delays from the send: the first's answer at 0.3 s at the soonest, the second's 0.3 s after it (0.3 s
        # from its arrival if it were not waiting its turn); 2 ms a delay: uvloop's whole-millisecond clock, as above.
        # (Not from when this client read the first answer: a loaded machine may read it late.)
        assert time.monotonic() - started >= 2 * (0.3 - 0.002)


def test_per_request_delay_and_immediate_stats(start_slow_server):
    server = start_slow_server(delay=30)
    with connect(server) as s:
        s.sendall(b"GET /?delay=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 200")
    with connect(server) as slow:
        slow.sendall(REQUEST_11)  # 30 s: stays active
        stats = wait_for(server.stats, lambda st: st["active_requests"] == 1)
        assert stats["requests_served"] == 1


def test_bad_per_request_delay_is_400(fast_server):
    with connect(fast_server) as s:
        s.sendall(b"GET /?delay=-3 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 400")


def test_malformed_request_gets_400_and_close(fast_server):
    with connect(fast_server) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 400")
        assert s.recv(10) == b""


def test_reset_on_request(fast_server):
    with connect(fast_server) as s:
        s.sendall(b"GET /?fail=reset HTTP/1.1\r\nHost: t\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            s.recv(10)
    assert fast_server.stats()["resets_sent"] == 1


def test_notices_a_client_that_hangs_up_early(start_slow_server):
    server = start_slow_server(delay=30)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        wait_for(server.stats, lambda st: st["active_requests"] == 1)
        client = "%s:%d" % s.getsockname()[:2]
    stats = wait_for(server.stats, lambda st: st["hung_up_early"] == 1)
    assert stats["active_requests"] == 0 and stats["requests_served"] == 0
    # the log names the client, though its connection is gone when the line is written
    wait_for(server.stderr_text, lambda text: f"client {client} hung up" in text)
    assert "Traceback" not in server.stderr_text()


def test_logs_socket_counts_every_interval():
    with ServerProcess(delay=30, track_interval=0.1) as server, connect(server) as s:
        s.sendall(REQUEST_11)
        text = wait_for(server.stderr_text, lambda t: "ESTABLISHED=1" in t and "active requests=1" in t)
        assert f"sockets on port {server.port}" in text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_signal_closes_everything_and_exits_0(sig):
    server = ServerProcess(delay=30).start()
    try:
        s = connect(server)
        s.sendall(REQUEST_11)
        wait_for(server.stats, lambda st: st["active_requests"] == 1)
        server._proc.send_signal(sig)
        assert server._proc.wait(timeout=5) == 0
        s.settimeout(5)
        try:
            assert s.recv(10) == b""  # closed (FIN) ...
        except ConnectionResetError:
            pass  # ... or reset: either way the connection is gone
        s.close()
        assert "Traceback" not in server.stderr_text()
    finally:
        server.stop()


# a process that starts a server (as `python -m harness run` does), says its pid, and waits for its own end
STARTER = """
import sys
from harness.server import ServerProcess
server = ServerProcess(delay=30, extra_args=tuple(sys.argv[1:])).start()
print(server.pid, flush=True)
sys.stdin.read()
"""
SERVER_ENDS_S = 10  # it sees its stdin end at once and stops in ~0.1 s; 10 s covers a loaded machine


def test_a_server_ends_with_the_process_that_started_it_even_killed_outright():
    """SIGKILL leaves a process no chance to stop its server: the server sees its stdin end and stops (with
    --workers, worker 0 reads stdin and ends the others: one test covers both)."""
    workers = "2"
    starter = subprocess.Popen([sys.executable, "-c", STARTER, "--workers", workers], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    server = None
    try:
        server = psutil.Process(int(starter.stdout.readline()))
        tree = [server, *server.children()]
        assert len(tree) == int(workers)
        starter.kill()
        starter.wait(timeout=SERVER_ENDS_S)
        assert not psutil.wait_procs(tree, timeout=SERVER_ENDS_S)[1], "the server outlived its starter"
    finally:
        starter.kill()
        starter.wait()
        for stream in (starter.stdin, starter.stdout):
            stream.close()
        if server is not None and alive(server):  # the failure above: end what it left, by its pid
            server.kill()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--delay", "-1"], "--delay: '-1' must be a finite number >= 0"),
        (["--delay", "soon"], "--delay: 'soon' is not a number"),
        (["--port", "70000"], "--port: '70000' is out of range 0..65535"),
        (["--track-interval", "0"], "--track-interval: '0' must be > 0"),
        (["--host", "203.0.113.9"], "--host 203.0.113.9: not an address of this machine"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
    ids=["negative-delay", "word-delay", "port-range", "zero-interval", "foreign-host", "unknown-flag"],
)
def test_bad_flags_exit_2_with_one_line(args, needle, capsys):
    assert server_main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and needle in err, err


def test_port_in_use_exits_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert server_main(["--port", str(port)]) == 2
    assert capsys.readouterr().err == f"harness.server: error: --port {port}: already in use on 127.0.0.1\n"


def test_bad_flag_from_a_shell_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "harness.server", "--delay", "-5"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "harness.server: error: argument --delay: '-5' must be a finite number >= 0\n"
