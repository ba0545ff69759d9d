"""``pytest --socket-leaks`` and ``@pytest.mark.socket_leaks`` in a user's own
project (a fresh folder, no conftest): leaks to a server the test starts itself
are found and named by file and line; a pool filled once, an ignored remote, a
clean test pass; a test failing for another reason is still checked."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pytest

from harness.values import OptionError
from harness.sampling.owned import OwnedSocket
from harness.sampling.sites import Site
from harness.judging import GROWTH, PLATEAU, judge_runs
from harness.socket_leaks import Ignore

from .tools import USER_PYTEST


USER_TESTS = '''
import contextlib
import socket
import threading

import pytest
import requests


@contextlib.contextmanager
def serving(close_accepted=True):
    """A keep-alive HTTP server of the test's own, on loopback."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop, accepted = threading.Event(), []

    def answer(conn):
        with conn:
            while conn.recv(4096):
                conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join()
    listener.close()
    for conn in accepted if close_accepted else ():
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:  # closed already, by its client
            pass


@pytest.fixture(scope="module")
def server():
    with serving() as url:
        yield url


@pytest.fixture
def own_server():
    with serving(close_accepted=False) as url:  # what its clients leave open stays open on its side too
        yield url


@pytest.fixture
def leaky_client(server):
    session = requests.Session()
    _kept.append(session)
    session.get(server, timeout=10)  # LINE leaky_client
    return session


@pytest.fixture(scope="module")
def warmed_client(server):
    with requests.Session() as session:
        session.get(server, timeout=10)
        yield session


_kept = []
_shared = requests.Session()


def leak(url):
    session = requests.Session()
    _kept.append(session)
    return session.get(url, timeout=10)  # LINE leak


def test_clean(server):
    with requests.Session() as session:
        session.get(server, timeout=10)


def test_leaks(server):
    leak(server)


@pytest.mark.socket_leaks(rounds=3)
def test_fills_a_pool_once(server):
    _shared.get(server, timeout=10)


@pytest.mark.socket_leaks(rounds=3)
def test_leaks_in_its_rounds(server):
    leak(server)


def test_fails_for_another_reason(server):
    leak(server)
    assert False, "another reason"


@pytest.mark.socket_leaks(ignore=["127.0.0.0/8"])
def test_ignored_by_marker(server):
    leak(server)


def test_ignored_by_module(server):
    import ignored_client
    ignored_client.fetch(server)


_growing = []


@pytest.mark.socket_leaks(rounds=3)
def test_grows_a_pool_it_reuses(server):
    _growing.append(requests.Session())  # one more each run, and every one used again: no socket abandoned
    for session in _growing:
        session.get(server, timeout=10)


def test_leaks_in_its_setup(leaky_client):
    pass


def test_uses_a_client_its_module_warmed(warmed_client, server):
    warmed_client.get(server, timeout=10)


def test_clean_against_a_server_of_its_own(own_server):
    with requests.Session() as session:
        session.get(own_server, timeout=10)


def test_leaks_to_a_server_of_its_own(own_server):
    leak(own_server)
'''
IGNORED_CLIENT = '''
import requests

_kept = []


def fetch(url):
    session = requests.Session()
    _kept.append(session)
    return session.get(url, timeout=10)
'''
EXPECTED = {  # test: (failed, its failure names a socket leak)
    "test_clean": (False, False),
    "test_leaks": (True, True),
    "test_fills_a_pool_once": (False, False),
    "test_leaks_in_its_rounds": (True, True),
    "test_fails_for_another_reason": (True, True),
    "test_ignored_by_marker": (False, False),
    "test_ignored_by_module": (False, False),
    "test_grows_a_pool_it_reuses": (False, False),  # 1 -> 2 -> 3, but tcp_info shows every socket reused
    "test_leaks_in_its_setup": (True, True),  # a function-scoped fixture's socket is the test's
    "test_uses_a_client_its_module_warmed": (False, False),  # a module fixture's socket is the module's
    "test_clean_against_a_server_of_its_own": (False, False),
    "test_leaks_to_a_server_of_its_own": (True, True),  # one socket: its server's accepted side is not a client's
}


def run_user_project(project, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    (project / "test_client.py").write_text(USER_TESTS)
    (project / "ignored_client.py").write_text(IGNORED_CLIENT)
    (project / "pytest.ini").write_text("[pytest]\nsocket_leaks_ignore =\n    module:ignored_client\n")
    done = subprocess.run([*USER_PYTEST, "--socket-leaks", *extra,
                           "--junitxml=junit.xml", "-o", "junit_family=xunit1"], cwd=project, capture_output=True,
                          text=True, timeout=120)
    cases = {case.get("name"): case for case in ET.parse(project / "junit.xml").getroot().iter("testcase")}
    return done, cases


def failure_text(case) -> str:
    failure = case.find("failure")
    return "" if failure is None else (failure.text or "") + failure.get("message", "")


def outcomes(cases: dict) -> dict:
    """A leak fails the test's call (never an error at teardown), whatever else failed it."""
    assert not [name for name, case in cases.items() if case.find("error") is not None], "an error, not a failure"
    return {name: (case.find("failure") is not None, "socket leak" in failure_text(case))
            for name, case in cases.items()}


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    done, cases = run_user_project(tmp_path_factory.mktemp("leaky_project"))
    lines = {name: number for number, line in enumerate(USER_TESTS.splitlines(), start=1)
             for name in [*EXPECTED, "leak", "leaky_client"] if line.endswith(f"# LINE {name}")}
    return done, cases, lines


def test_every_test_gets_the_outcome_it_should(user_run):
    done, cases, _ = user_run
    assert outcomes(cases) == EXPECTED, done.stdout[-4000:]


def test_under_xdist_each_worker_checks_its_own_process(tmp_path):
    done, cases = run_user_project(tmp_path, "-n", "2", "--basetemp", str(tmp_path / "basetemp"))
    assert "2 workers" in done.stdout or "gw1" in done.stdout, done.stdout[-2000:]
    assert outcomes(cases) == EXPECTED, done.stdout[-4000:]
    # the workers' costs are gathered by the controller
    assert f"socket-leak check: {len(EXPECTED)} tests, " in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("name, where", [("test_leaks", "leak"), ("test_fails_for_another_reason", "leak"),
                                         ("test_leaks_in_its_setup", "leaky_client"),
                                         ("test_leaks_to_a_server_of_its_own", "leak")])
def test_a_leak_is_named_by_its_file_and_line(user_run, name, where):
    _, cases, lines = user_run
    message = failure_text(cases[name])
    assert "socket leak: 1 socket opened by this test is still held" in message, message
    # the line that called the library: inside the test's helper, as goleak names the goroutine's creator
    assert f"1 held, opened at test_client.py:{lines[where]} in {where} (via requests/sessions.py:" in message
    assert "ESTABLISHED 127.0.0.1:" in message


def test_a_test_failing_for_another_reason_keeps_its_own_error_first(user_run):
    _, cases, _ = user_run
    message = failure_text(cases["test_fails_for_another_reason"])
    assert message.index("another reason") < message.index("socket leak:"), message


def test_a_leak_in_the_rounds_says_it_grew(user_run):
    _, cases, lines = user_run
    message = cases["test_leaks_in_its_rounds"].find("failure").get("message")
    assert ("socket leak from run to run: held 1 -> 2 -> 3 after 3 runs: more after every run, 2 of them "
            "abandoned (held since an earlier run, no byte received since)") in message
    assert f"2 held, opened at test_client.py:{lines['leak']} in leak" in message


def test_the_cost_is_reported(user_run):
    done, _, _ = user_run
    assert f"socket-leak check: {len(EXPECTED)} tests, " in done.stdout


def test_a_bad_ignore_entry_is_one_line(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nsocket_leaks_ignore =\n    not an address\n")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    done = subprocess.run([*USER_PYTEST, "--socket-leaks"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4 and "Traceback" not in done.stderr
    assert ("leak harness: socket_leaks_ignore (ini): 'not an address' is not a host, network, :port, "
            "host:port or module:NAME to ignore") in done.stderr


@pytest.mark.parametrize("entry, remote, site, covered", [
    ("10.0.0.0/8", "10.1.2.3:80", None, True),
    ("10.0.0.0/8", "11.1.2.3:80", None, False),
    ("127.0.0.1", "127.0.0.1:5432", None, True),
    (":5432", "192.0.2.1:5432", None, True),
    ("192.0.2.1:5432", "192.0.2.1:5433", None, False),
    ("[::1]:80", "[::1]:80", None, True),
    ("module:mypkg.pool", "192.0.2.1:80", Site("mypkg/pool.py", 3, "get", None), True),
    ("module:mypkg.pool", "192.0.2.1:80", Site("app.py", 3, "get", "mypkg/pool.py:9"), True),
    ("module:mypkg.pool", "192.0.2.1:80", Site("app.py", 3, "get", "requests/api.py:9"), False),
])
def test_ignore_rules(entry, remote, site, covered):
    sock = OwnedSocket("127.0.0.1:40000", remote, "ESTABLISHED")
    assert Ignore.parse([entry], "test").covers(sock, site) is covered


@pytest.mark.parametrize("entry", ["not an address", ":0", ":99999", "module:", "10.0.0.0/99"])
def test_bad_ignore_entries_name_themselves(entry):
    with pytest.raises(OptionError, match=f"^here: {entry!r} is not a host"):
        Ignore.parse([entry], "here")


@pytest.mark.parametrize("held_after, abandoned, verdict", [
    ([1, 1, 1], 0, PLATEAU),         # a pool filled once
    ([1, 2, 2], 1, PLATEAU),         # paused: not a leak of every run
    ([1, 2, 3], 2, GROWTH),          # one a run, the older ones never used again: proved
    ([1, 2, 3], 0, PLATEAU),         # one a run, all used again: a pool meeting more concurrency, within 2
    ([1, 2, 3, 4], 0, GROWTH),       # beyond a pool's 2 whatever the use
    ([1, 2, 3], None, GROWTH),       # no tcp_info: tolerance 0
    ([0, 1], 1, GROWTH),
])
def test_rounds_of_a_test_are_judged_by_both_rules(held_after, abandoned, verdict):
    assert judge_runs(held_after, abandoned)[0] == verdict
