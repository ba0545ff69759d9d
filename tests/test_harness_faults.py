"""The harness itself under faults: a server that dies, a run that is stopped
(SIGINT, SIGTERM, pytest-timeout). Nothing measured is lost and nothing is left."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness.driving import ExperimentError, Run
from harness.faces.common import run_and_write
from harness.options import Settings
from harness.runner import Experiment

from .interrupting import interrupt, still_running
from .waiting import alive, wait_for
from .tools import USER_PYTEST

ROOT = Path(__file__).resolve().parent.parent
DEATH_REPORTED_WITHIN_S = 2.0  # the promise; the watchdog looks every 0.1 s


def held_sockets_to(ports: set[int], pid: int | None = None) -> list:
    """ESTABLISHED / CLOSE_WAIT sockets of process ``pid`` (or this one) to any of ``ports``."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return []
    return [c for c in conns if c.raddr and c.raddr.port in ports and c.status in ("ESTABLISHED", "CLOSE_WAIT")]


@pytest.mark.parametrize("variant", ["faulty", "fixed"], ids=["seed-leak", "seed-pool"])  # not -k faulty/fix
def test_server_death_fails_the_experiment_within_2_s_and_keeps_what_was_measured(tmp_path, variant):
    settings = Settings(results_dir=str(tmp_path), cycles=400)  # a round of 20 s: the death comes mid-round
    outcome: dict = {}
    started: list = []  # the runner tells of its server before starting it

    def run():
        try:
            run_and_write(Experiment(variant, settings=settings, name="dies"), tmp_path,
                          progress=lambda line: None, on_server=started.append)
        except ExperimentError as exc:
            outcome["error"], outcome["at"] = str(exc), time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    server = wait_for(lambda: started[0] if started and started[0].port else None, lambda s: s is not None)
    wait_for(server.stats, lambda st: st["requests_served"] >= 10)
    os.kill(server.pid, signal.SIGKILL)  # the runner's server, by its pid
    killed_at = time.monotonic()
    thread.join(timeout=10)
    assert not thread.is_alive() and "error" in outcome, outcome
    assert outcome["at"] - killed_at < DEATH_REPORTED_WITHIN_S, outcome["at"] - killed_at
    assert f"pid {server.pid}) died" in outcome["error"] and "exit status -9" in outcome["error"]
    data = json.loads((tmp_path / "dies.json").read_text())
    assert data["complete"] is False and "died" in data["error"]
    assert len(data["samples"]) > 5  # what was measured before the death is kept
    assert not held_sockets_to({server.port})


def test_interrupted_while_its_servers_stop_a_run_keeps_its_verdict(tmp_path, monkeypatch):
    """A signal can land once the verdict is in, while the servers stop (seen in a loaded
    soak: nothing was written): the result is written all the same, complete, and the
    interruption goes on."""
    from harness.server import ServerProcess

    stop = ServerProcess.stop

    def stop_then_interrupt(self):
        stop(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(ServerProcess, "stop", stop_then_interrupt)
    data = _interrupted_fixed_run(tmp_path)
    assert data["complete"] is True and data["verdict"] == "plateau", data.get("error")


def _interrupted_fixed_run(tmp_path) -> dict:
    """Run the fixed client briefly, which must end in KeyboardInterrupt; the result it wrote."""
    experiment = Experiment("fixed", name="interrupted", settings=Settings(results_dir=str(tmp_path), delay=0.05))
    with pytest.raises(KeyboardInterrupt):
        run_and_write(experiment, tmp_path)
    return json.loads((tmp_path / "interrupted.json").read_text())


def test_interrupted_while_its_result_is_written_a_run_keeps_it_whole(tmp_path, monkeypatch):
    """^C while a finished result was being written (a loaded soak: the compare's second result was lost):
    the write ends, then the interruption goes on."""
    from harness.faces import common

    write = common.write_result

    def interrupted_mid_write(result, results_dir):
        signal.raise_signal(signal.SIGINT)  # as ^C would come, halfway through the write
        return write(result, results_dir)

    monkeypatch.setattr(common, "write_result", interrupted_mid_write)
    # ^C as the CLI takes it: started in the background (a soak), pytest inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        data = _interrupted_fixed_run(tmp_path)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # its handler is put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert data["complete"] is True and data["verdict"] == "plateau", data.get("error")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_interrupted_compare_leaves_nothing_behind(sig, tmp_path):
    def second_experiment_under_way(lines):  # a line, not a time: the second experiment reports progress
        return any(ln.startswith("[2/8]") for ln in lines) and "watching" in lines[-1]

    done = interrupt(["compare", "--results-dir", str(tmp_path)], second_experiment_under_way, sig)
    assert done.children, "a server should be running mid-experiment"
    assert done.status == 130, done.stderr
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr
    assert not still_running(done.children)
    # what was measured is kept: the first experiment's result and the second's, complete or marked incomplete (on
    # a loaded machine, reading the run's sockets with psutil before the signal once took until the second was over)
    kept = [json.loads(p.read_text()) for p in tmp_path.glob("*-*.json")]
    assert len(kept) >= 2, [d["name"] for d in kept]
    assert all(d["complete"] or d["error"].startswith("KeyboardInterrupt") for d in kept)
    # the session's table and page cover them; no picture is drawn once interrupted (seconds of matplotlib)
    assert (tmp_path / "summary.md").exists() and (tmp_path / "report.html").exists()
    assert not (tmp_path / "compare.png").exists()
    # the process is gone; what it held died with it, and the servers with theirs: nothing on those ports held by
    # this process, its children or no process at all. Another worker's new server may get the same address and
    # port once these are gone, and its own clients connect to it (seen once in CI): a port listened on again is
    # that server's; its clients' sockets, made while psutil scanned, can show no process (seen once in a soak).
    ours = {c.pid for c in done.children} | {None}
    table = psutil.net_connections(kind="tcp")
    listened_again = {(c.laddr.ip, c.laddr.port) for c in table if c.status == "LISTEN"}
    assert not [c for c in table if c.raddr and (c.raddr.ip, c.raddr.port) in done.servers - listened_again
                and c.status in ("ESTABLISHED", "CLOSE_WAIT") and c.pid in ours]


USER_TEST = '''
import requests

_kept = []


def leaky(url):
    session = requests.Session()
    _kept.append(session)
    return session.get(url).status_code


def test_runs_too_long(leak_check):
    leak_check(leaky, expect="growth", cycles=2000, name="too_long")
'''


def test_pytest_timeout_leaves_no_process_and_no_socket(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # its own config: not an enclosing project's (a soak's)
    # 5 s: the user's session, its server and the experiment's start fit with room on a loaded machine (in 3 s a
    # loaded soak once timed out before the first sample); the experiment itself would take ~100 s
    done = subprocess.run([*USER_PYTEST, "-o", "timeout=5",
                           "-o", "timeout_method=signal"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Timeout" in done.stdout, done.stdout[-3000:]
    data = json.loads((tmp_path / "results" / "too_long.json").read_text())
    assert data["complete"] is False and data["samples"], data["error"]
    server_pid, host, port = data["server"]["pid"], data["server"]["host"], data["server"]["port"]
    assert not alive(server_pid)
    # its address and port both: another worker's server on 127.0.0.4 may have the same port number (seen in a soak)
    assert not [c for c in psutil.net_connections(kind="tcp")
                if c.raddr and (c.raddr.ip, c.raddr.port) == (host, port) and c.status in ("ESTABLISHED", "CLOSE_WAIT")]


def test_leftover_sockets_are_found_and_named(start_slow_server):
    from harness.sampling.leftovers import describe, settle

    server = start_slow_server(delay=0.05)
    forgotten = socket.create_connection((server.host, server.port), timeout=5)
    try:
        left = settle({(server.host, server.port)}, deadline_s=0.3)  # it stays open: the wait runs out
        assert [c.laddr.port for c in left] == [forgotten.getsockname()[1]]
        assert f"-> {server.host}:{server.port} ESTABLISHED" in describe(left)
    finally:
        forgotten.close()
    assert settle({(server.host, server.port)}) == []


def test_a_drain_that_gives_up_says_where_its_requests_wait(start_slow_server):
    """Requests that never finish are placed: on the server's side (it holds them: received,
    unanswered) or the client's (started, never received). Here one of each."""
    server = start_slow_server(delay=30)  # an answer long after the test: held until the socket closes
    run = Run(lambda url: None, server, sample_interval=0.05)
    with run, socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        run.tracker.begin()  # the request sent above
        run.tracker.begin()  # one the client never sent
        wait_for(server.stats, lambda stats: stats["active_requests"] == 1)
        with pytest.raises(ExperimentError) as caught:
            run.drain(0.2)
    text = str(caught.value)
    assert text.startswith("2 requests still in flight, none finishing for 0.2 s"), text
    assert ("it holds 1 requests unanswered and 0 connections that have sent nothing yet, and received 1 of the 2 "
            "requests started; the client's sockets to it: 1 established, 0 in CLOSE_WAIT") in text, text


def stalled_drain(run: Run, requests: int) -> str:
    """What a drain of ``requests`` that never end says as it gives up (after 0.2 s)."""
    with run:
        for _ in range(requests):
            run.driver.fire()
        with pytest.raises(ExperimentError) as caught:
            run.drain(0.2)
    return str(caught.value)


def test_a_drain_that_gives_up_says_where_the_clients_threads_wait(start_slow_server, capsys):
    """A client stalled inside its own code (here: waiting on an event never set) is named at
    its line; the full stacks go to stderr."""
    never = threading.Event()

    def stuck_request(url: str) -> None:
        never.wait(30)  # the stall: released by the test's end

    try:
        text = stalled_drain(Run(stuck_request, start_slow_server(delay=0), sample_interval=0.05), 3)
    finally:
        never.set()
    line = stuck_request.__code__.co_firstlineno + 1
    assert "the client's threads: 3 (Thread-" in text, text
    assert f", ...) at {__file__}:{line} in stuck_request (waiting in threading.py:" in text, text
    assert "socket-sampler" not in capsys.readouterr().err  # the harness's own threads are left out
    assert "experiment-watchdog" not in text


def test_a_drain_that_gives_up_says_where_an_async_clients_tasks_wait(start_slow_server, capsys):
    """An ``async def`` client's requests are tasks on one loop: each is named at the line it awaits."""
    import asyncio

    from harness.clients import AsyncTarget

    async def stuck_request(url: str) -> None:
        await asyncio.sleep(30)  # the stall: cancelled with the loop at the test's end

    target = AsyncTarget(stuck_request)
    try:
        text = stalled_drain(Run(target, start_slow_server(delay=0), sample_interval=0.05), 2)
    finally:
        target.loop.call_soon_threadsafe(lambda: [t.cancel() for t in target.pending_tasks()])
        wait_for(target.pending_tasks, lambda tasks: tasks == [])
        target.close()
    line = stuck_request.__code__.co_firstlineno + 1
    assert "its tasks: 2 (Task-" in text and f", ...) at {__file__}:{line} in stuck_request" in text, text
    # the loop's own thread is free, waiting for events: the stall is the tasks', not a blocked loop
    assert "the client's threads: 1 (target-event-loop) at " in text and "in select" in text, text
    assert "target-event-loop" in capsys.readouterr().err

