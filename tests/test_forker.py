"""Servers forked from one forker (``harness.server.forker``): each behaves as a server
started as its own interpreter, a start that fails says why, and neither the forker nor
its servers outlive the process that asked for them."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import requests

from harness.server import ServerError, ServerProcess
from harness.server import forker as forking

from .waiting import alive, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_forker():
    """This test's own forker (the plugin turned forking on for the session; this one is stopped here)."""
    forking.use_forker()
    server_forker = forking.Forker()
    yield server_forker
    left = list(server_forker.servers)
    server_forker.close()  # first: a failing test leaves no forker behind (it ends what it still ran)
    assert not left, f"servers left running: {left}"
    assert server_forker.process.returncode == 0


def test_a_forked_server_answers_and_ends_on_sigterm_with_status_0(own_forker):
    server = own_forker.spawn(["--host", "127.0.0.1", "--port", "0", "--delay", "0.01"])
    ready = json.loads(server.stdout.readline())
    assert ready["pid"] == server.pid and server.poll() is None
    assert psutil.Process(server.pid).ppid() == own_forker.process.pid
    assert requests.get(f"http://127.0.0.1:{ready['port']}/", timeout=5).text == "ok\n"
    server.terminate()
    assert server.wait(timeout=5) == 0
    assert not alive(server.pid)
    server.stdout.close()
    server.stderr.close()


def test_a_forked_server_killed_reports_the_signal_as_popen_does(own_forker):
    server = own_forker.spawn(["--host", "127.0.0.1", "--port", "0", "--delay", "0.01"])
    json.loads(server.stdout.readline())
    server.kill()
    assert server.wait(timeout=5) == -signal.SIGKILL
    server.stdout.close()
    server.stderr.close()


def test_a_forked_server_that_cannot_listen_says_why():
    """Through ServerProcess, as a suite starts one: the server's own error line and status 2."""
    assert forking.forker() is not None  # the plugin turned forking on
    server = ServerProcess(delay=0.01, host="no-such-host.invalid")
    with pytest.raises(ServerError, match=r"(?s)exited with status 2 before listening.*"
                                            r"harness.server: error: --host 'no-such-host.invalid': not an address, nor a name"):
        server.start()


def test_servers_run_from_the_forker_are_listed_and_ended_when_it_stops():
    script = textwrap.dedent("""
        import json
        from harness.server import ServerProcess, stop_forker, use_forker
        use_forker()
        server = ServerProcess(delay=0.01).start()
        print(json.dumps({"left": stop_forker(), "server": server.pid, "alive": server.alive()}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["left"] == [report["server"]] and report["alive"] is False


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_neither_the_forker_nor_its_servers_outlive_their_caller(how):
    """The caller ends without stopping anything (os._exit, SIGKILL): the forker sees its
    socket close, ends its servers and exits."""
    script = textwrap.dedent("""
        import json, os, sys, threading
        from harness.server import ServerProcess, use_forker
        from harness.server.forker import forker
        use_forker()
        servers = [ServerProcess(delay=0.01).start() for _ in range(2)]
        print(json.dumps({"forker": forker().process.pid, "servers": [s.pid for s in servers]}), flush=True)
        if sys.argv[1] == "exit":
            os._exit(0)
        threading.Event().wait(60)  # until the test's SIGKILL
    """)
    caller = subprocess.Popen([sys.executable, "-c", script, how], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        started = json.loads(caller.stdout.readline())
        if how == "sigkill":
            caller.kill()
        caller.wait(timeout=30)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
        caller.stdout.close()
    pids = [started["forker"], *started["servers"]]

    def running():
        return [pid for pid in pids if alive(pid)]

    # SIGTERM ends a server in ~0.1 s; the forker waits 5 s before SIGKILL: 15 s covers a loaded machine
    wait_for(running, lambda alive: not alive, deadline_s=15)


def test_without_pidfds_servers_start_as_their_own_interpreter(monkeypatch):
    monkeypatch.setattr(forking, "available", lambda: False)
    forking.use_forker()
    try:
        assert forking.forker() is None
        with ServerProcess(delay=0.01) as server:
            assert psutil.Process(server.pid).ppid() == psutil.Process().pid
            assert requests.get(server.url, timeout=5).text == "ok\n"
    finally:
        monkeypatch.undo()
        forking.use_forker()


def test_a_peer_with_a_command_of_its_own_is_never_forked():
    """The bench's peers subclass ServerProcess with their own program: forking them
    would run the slow server in their place."""
    from harness.peers import AiohttpPeer

    assert forking.forker() is not None  # the plugin turned forking on
    with AiohttpPeer(delay=0.01) as peer:
        assert "harness.peers.aiohttp_server" in psutil.Process(peer.pid).cmdline()
        assert "aiohttp" in requests.get(peer.url, timeout=5).headers.get("Server", "")


# a child that binds port 0 and reports it after ``{busy}`` s of work (CPU, as an import is) or of sleep
STARTER = """
import json, socket, sys, time
end = time.monotonic() + {busy}
while time.monotonic() < end:
    {work}
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(json.dumps({{"port": s.getsockname()[1]}}), flush=True)
sys.stdin.read()
"""
# Limits a loaded machine meets: a busy process gets CPU many times a second even at a load average of 15 on 2
# cores (1 s without any is a stall), and a start of ~1.5 s of work finishes within 30 s. With 0.3 s and 1.5 s a
# loaded soak's busy child was taken for stuck once, and once took longer than 1.5 s.
QUIET_S, MOST_S = 1.0, 30.0
# busy for ever, but lightly (a few % of a core): given up at its own 3 s most, not for want of CPU
LIGHTLY = "sum(range(20_000)); time.sleep(0.005)"


@pytest.mark.parametrize("work, busy, most_s, said", [
    ("pass", 1.5, MOST_S, None),  # slower to start than its quiet limit, busy all along: waited for
    ("time.sleep(30)", 30, MOST_S, f"used no CPU for {QUIET_S:g} s and did not report its port"),  # stuck
    (LIGHTLY, 30, 3.0, "did not report its port within 3 s, though busy"),  # busy for ever: given up at the most
], ids=["busy", "stuck", "busy-too-long"])
def test_a_starting_server_is_waited_for_while_it_works(monkeypatch, work, busy, most_s, said):
    """A soak's bench peer (a new interpreter importing aiohttp) took more than 10 s to report its
    port on a loaded machine: a start is given up once the child uses no CPU for START_QUIET_S,
    or after START_MOST_S in all, not after a fixed time."""
    from harness.server import process

    class Starter(ServerProcess):
        def command(self) -> list[str]:
            return [sys.executable, "-c", STARTER.format(busy=busy, work=work)]

    monkeypatch.setattr(process, "START_QUIET_S", QUIET_S)
    monkeypatch.setattr(process, "START_MOST_S", most_s)
    starter = Starter(delay=0.0)
    if said is None:
        with starter:
            assert starter.port > 0 and starter.alive()
        return
    started = time.monotonic()
    with pytest.raises(ServerError, match=said):
        starter.start()
    assert time.monotonic() - started < 20  # within its limits (+ the stop's), not the 30 s of work
    assert not starter.alive()  # stopped when given up


def test_a_forked_harness_run_forks_its_servers_too_and_they_end_with_it(own_forker, tmp_path):
    """``python -m harness`` forked (as tests/tools.py forks its runs): its working folder,
    environment and arguments are the caller's; its server is forked by the same forker, not
    started as its own interpreter; killed, its server is ended by the forker."""
    (tmp_path / "mine.py").write_text("def get(url):\n    pass\n")  # found in its working folder, as with -m
    for env, said in (({"LEAK_DELAY": "x"}, b"LEAK_DELAY: 'x' is not a number"),  # the environment given
                      ({}, b"module 'mine' has no 'nope'")):  # mine.py found, in the working folder given
        refused = own_forker.spawn(["run", "mine:nope"], program="harness", cwd=str(tmp_path), env={**os.environ, **env})
        out, err = refused.communicate(60)  # refused in ~50 ms; 60 s: the forker's first harness run imports the CLI
        assert refused.returncode == 2 and said in err, (out, err)
    run = own_forker.spawn(["run", "--cmd", "sleep 60 # {url}", "--duration", "60", "--plots", "off",
                            "--json", str(tmp_path / "r.json")], program="harness", cwd=str(tmp_path),
                           env=dict(os.environ))
    forker_process = psutil.Process(own_forker.process.pid)

    def servers():
        return [p for p in forker_process.children() if p.pid != run.pid]

    try:
        # a forked server starts in ~30 ms; 20 s covers a loaded machine
        server = wait_for(servers, lambda found: len(found) == 1, deadline_s=20)[0]
        assert psutil.Process(run.pid).ppid() == forker_process.pid

        def own_servers():  # children of the run's that run the server's code (a fork of it has its command line)
            found = []
            for child in psutil.Process(run.pid).children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    if "harness.server" in " ".join(child.cmdline()):
                        found.append(child)
            return found

        # none: the run's one child is its command's shell, which has the run's command line (the forker's) from its
        # fork to its exec (a loaded soak's run looked in between); a server of its own would stay. 10 s: loaded
        wait_for(own_servers, lambda found: not found, deadline_s=10)
    finally:
        run.kill()
        run.communicate(30)  # SIGKILLed: its end is reported within ms; 30 s for a loaded machine
    assert run.returncode == -signal.SIGKILL
    # the forker saw its socket close: SIGTERM ends the server in ~0.1 s (SIGKILL after 5 s); 15 s for a loaded machine
    wait_for(lambda: alive(server), lambda running: not running, deadline_s=15)


def test_a_run_killed_with_a_message_unread_leaves_the_forker_serving(own_forker, tmp_path):
    """A run that dies before reading what the forker sent it (here: its server's end, while
    the run was stopped) makes the forker's next read of its socket fail with ECONNRESET; that
    is the run's end, not the forker's."""
    run = own_forker.spawn(["run", "--cmd", "sleep 60 # {url}", "--duration", "60", "--plots", "off",
                            "--json", str(tmp_path / "r.json")], program="harness", cwd=str(tmp_path),
                           env=dict(os.environ))
    forker_process = psutil.Process(own_forker.process.pid)
    try:
        # a forked server starts in ~30 ms; 20 s covers a loaded machine
        server = wait_for(lambda: [p for p in forker_process.children() if p.pid != run.pid], lambda found: found,
                          deadline_s=20)[0]
        os.kill(run.pid, signal.SIGSTOP)
        server.terminate()  # its end goes to the stopped run, unread
        wait_for(lambda: server.pid in {p.pid for p in forker_process.children()}, lambda child: not child,
                 deadline_s=15)  # reaped by the forker: the notice is sent
    finally:
        run.kill()
        run.communicate(30)  # SIGKILLed: its end is reported within ms; 30 s for a loaded machine
    fresh = own_forker.spawn(["--host", "127.0.0.1", "--port", "0", "--delay", "0.01"])
    assert json.loads(fresh.stdout.readline())["pid"] == fresh.pid  # the forker serves on
    fresh.terminate()
    assert fresh.wait(10) == 0


def test_a_child_that_ends_before_its_start_is_taken_is_still_seen_to_end(own_forker, tmp_path, monkeypatch):
    """A harness run refused at once can end, and the forker report it, before spawn() has
    taken its start: that end is kept, not lost (a wait that never returned, seen in a soak)."""
    made = forking.ForkedProcess

    def taken_late(pid, *args):  # spawn() takes the start only once the child has ended and been reaped
        wait_for(lambda: psutil.pid_exists(pid), lambda exists: not exists, deadline_s=20)  # 20 s: a loaded machine
        return made(pid, *args)

    monkeypatch.setattr(forking, "ForkedProcess", taken_late)
    refused = own_forker.spawn(["run", "mine:nope"], program="harness", cwd=str(tmp_path), env=dict(os.environ))
    out, err = refused.communicate(20)  # refused in ~50 ms; 20 s for a loaded machine
    assert refused.returncode == 2 and b"cannot import 'mine'" in err, (out, err)
