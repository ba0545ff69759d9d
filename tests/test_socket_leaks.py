"""``pytest --socket-leaks`` and ``@pytest.mark.socket_leaks`` in a user's own
project (a fresh folder, no conftest): leaks to a server the test starts itself
are found and named by file and line; a pool filled once, an ignored remote, a
clean test pass; a test failing for another reason is still checked."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.options import OptionError
from harness.sampling.owned import OwnedSocket
from harness.sampling.sites import Site
from harness.socket_leaks import Ignore

USER_TESTS = '''
import socket
import threading

import pytest
import requests


@pytest.fixture(scope="module")
def server():
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
    for conn in accepted:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:  # closed already, by its client
            pass


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
'''
IGNORED_CLIENT = '''
import requests

_kept = []


def fetch(url):
    session = requests.Session()
    _kept.append(session)
    return session.get(url, timeout=10)
'''
EXPECTED = {  # test: (failure, error at teardown)
    "test_clean": (False, False),
    "test_leaks": (False, True),
    "test_fills_a_pool_once": (False, False),
    "test_leaks_in_its_rounds": (True, False),
    "test_fails_for_another_reason": (True, True),
    "test_ignored_by_marker": (False, False),
    "test_ignored_by_module": (False, False),
}


def run_user_project(project, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    (project / "test_client.py").write_text(USER_TESTS)
    (project / "ignored_client.py").write_text(IGNORED_CLIENT)
    (project / "pytest.ini").write_text("[pytest]\nsocket_leaks_ignore =\n    module:ignored_client\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--socket-leaks", *extra,
                           "--junitxml=junit.xml", "-o", "junit_family=xunit1"], cwd=project, capture_output=True,
                          text=True, timeout=120)
    cases: dict = {}  # a test that fails and errors at teardown has two entries: one element with both
    for case in ET.parse(project / "junit.xml").getroot().iter("testcase"):
        merged = cases.setdefault(case.get("name"), ET.Element("testcase"))
        merged.extend(list(case))
    return done, cases


def outcomes(cases: dict) -> dict:
    return {name: (case.find("failure") is not None, case.find("error") is not None) for name, case in cases.items()}


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    done, cases = run_user_project(tmp_path_factory.mktemp("leaky_project"))
    lines = {name: number for number, line in enumerate(USER_TESTS.splitlines(), start=1)
             for name in [*EXPECTED, "leak"] if line.endswith(f"# LINE {name}")}
    return done, cases, lines


def test_every_test_gets_the_outcome_it_should(user_run):
    done, cases, _ = user_run
    assert outcomes(cases) == EXPECTED, done.stdout[-4000:]


def test_under_xdist_each_worker_checks_its_own_process(tmp_path):
    done, cases = run_user_project(tmp_path, "-n", "2", "--basetemp", str(tmp_path / "basetemp"))
    assert "2 workers" in done.stdout or "gw1" in done.stdout, done.stdout[-2000:]
    assert outcomes(cases) == EXPECTED, done.stdout[-4000:]


@pytest.mark.parametrize("name", ["test_leaks", "test_fails_for_another_reason"])
def test_a_leak_is_named_by_its_file_and_line(user_run, name):
    _, cases, lines = user_run
    message = cases[name].find("error").text
    assert message.startswith("socket leak: 1 socket opened by this test is still held"), message
    # the line that called the library: inside the test's helper, as goleak names the goroutine's creator
    assert f"1 held, opened at test_client.py:{lines['leak']} in leak (via requests/sessions.py:" in message
    assert "ESTABLISHED 127.0.0.1:" in message


def test_a_leak_in_the_rounds_says_it_grew(user_run):
    _, cases, lines = user_run
    message = cases["test_leaks_in_its_rounds"].find("failure").get("message")
    assert "socket leak from run to run: held 1 -> 2 -> 3 after 3 runs: more after every run" in message
    assert f"2 held, opened at test_client.py:{lines['leak']} in leak" in message


def test_the_cost_is_reported(user_run):
    done, _, _ = user_run
    assert f"socket-leak check: {len(EXPECTED)} tests, " in done.stdout


def test_a_bad_ignore_entry_is_one_line(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nsocket_leaks_ignore =\n    not an address\n")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--socket-leaks"],
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
