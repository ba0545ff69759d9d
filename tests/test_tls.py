"""HTTPS: the slow server over TLS with a CA made by trustme, clients trusting it each the
way they expect (``verify=`` in the catalog, SSL_CERT_FILE and the like for commands),
verdicts over TLS, and the TLS faults (a close without close_notify, a stalled handshake)."""
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from harness.clients import VARIANTS, expectation
from harness.server import Certificates
from harness.server.main import main as server_main

from .server_loops import start_slow_server  # noqa: F401  (each test on every event loop)
from .tools import run_harness, tool
from .waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


def tls_connection(server, ca: Path | None = None, **wrap) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca or server.tls.ca))
    raw = socket.create_connection((server.host, server.port), timeout=5)
    return context.wrap_socket(raw, server_hostname=server.host, **wrap)


def get(sock: ssl.SSLSocket, path: str = "/?delay=0") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_serves_https_to_a_client_that_trusts_its_ca(start_slow_server):
    server = start_slow_server(tls=True, delay=0)
    assert server.url.startswith("https://127.0.0.1:")
    with tls_connection(server) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3") and sock.selected_alpn_protocol() in (None, "http/1.1")
        assert get(sock).startswith(b"HTTP/1.1 200 OK")
        assert get(sock).startswith(b"HTTP/1.1 200 OK")  # kept alive over TLS
    stats = server.stats()
    assert stats["tls_handshakes"] >= 2 and stats["requests_received"] == 2  # the harness's own /stats one too


def test_a_client_that_trusts_another_ca_or_speaks_plain_http_is_refused_and_counted(start_slow_server, tmp_path):
    server = start_slow_server(tls=True, delay=0)
    with Certificates.make() as other:
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_connection(server, ca=other.ca)
    with socket.create_connection((server.host, server.port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = plain.recv(100)
        assert not answer.startswith(b"HTTP/"), answer  # a TLS alert, or the close: never an HTTP answer
    wait_for(lambda: server.stats()["tls_failures"], lambda failures: failures >= 2)
    assert server.stats()["requests_received"] == 0  # neither reached HTTP


def test_unclean_close_answers_whole_then_ends_without_close_notify(start_slow_server):
    server = start_slow_server(tls=True, delay=0, fault="unclean-close")
    with tls_connection(server, suppress_ragged_eofs=False) as sock:
        assert get(sock).startswith(b"HTTP/1.1 200 OK")  # the whole answer, keep-alive promised
        with pytest.raises(ssl.SSLEOFError):  # then TCP's FIN under the TLS session: no close_notify
            sock.recv(100)
    assert server.stats()["unclean_closes"] == 1


def test_a_stalled_handshake_never_gets_an_answer_until_the_client_gives_up(start_slow_server):
    server = start_slow_server(tls=True, delay=0)
    assert server.stall_handshakes(1) == {"stalling": 1}
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    raw = socket.create_connection((server.host, server.port), timeout=0.5)
    with pytest.raises(TimeoutError):  # 0.5 s: the server would answer a ClientHello in ~1 ms
        context.wrap_socket(raw, server_hostname=server.host)
    raw.close()
    wait_for(lambda: server.stats()["open_connections"], lambda open_: open_ == 1)  # its own /stats one only
    with tls_connection(server) as sock:  # the next handshake is answered
        assert get(sock).startswith(b"HTTP/1.1 200 OK")
    stats = server.stats()
    assert stats["tls_stalled"] == 1 and stats["tls_failures"] == 0


def test_stalling_needs_tls(start_slow_server):
    server = start_slow_server(delay=0)
    with pytest.raises(Exception, match="speaks no TLS"):
        server.stall_handshakes(1)


def test_the_server_program_makes_its_ca_names_it_and_removes_it(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "harness.server", "--tls", "--delay", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        ca = Path(ready["ca"])
        assert ready["tls"] is True and ca.is_file()
        done = subprocess.run([tool("curl", "curl"), "-s", "--cacert", str(ca), f"https://localhost:{ready['port']}/"],
                              capture_output=True, text=True, timeout=30)
        assert done.stdout == "ok\n", done
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0 and not ca.exists() and not ca.parent.exists()  # nothing left in /tmp


@pytest.mark.parametrize("args, message", [
    (["--cert", "/nonexistent/cert.pem"], "--cert and --key go together: give both, or --tls alone for a "
                                           "certificate made at start"),
    (["--cert", "/nonexistent/cert.pem", "--key", "/nonexistent/key.pem"],
     "--cert '/nonexistent/cert.pem' --key '/nonexistent/key.pem': cannot be used: No such file or directory"),
])
def test_bad_certificate_files_are_one_line(capsys, args, message):
    assert server_main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"harness.server: error: {message}", err


# every catalog pair, the seed's pair among them, judged over HTTPS: each library trusting the CA its own way.
# --budget 60, not 260: a sweep's burst opens a connection a request, a TLS handshake each (~2 ms of CPU on both
# sides); 60 still reaches every socket a fixed client holds (the first sweep is at least 20 requests)
CATALOG_OVER_TLS = {v.name: (["run", v.name, "--tls", "--budget", "60", "--expect", expectation(v.kind)], ROOT)
                    for v in VARIANTS}
# real programs over HTTPS: curl trusts CURL_CA_BUNDLE; ab does not check certificates
# the curl loops outlast the 4-s run (40 x ~0.25 s), so the harness stops them at their duration and samples longer
# when undecided; a loop that ended by itself near 4 s was once judged on too few samples (8 workers, 2 cores).
COMMANDS = {
    "curl-loop": ("for i in $(seq 1 40); do curl -s -o /dev/null {url}; done", ("curl", "curl"), "plateau"),
    "ab-keep-alive": ("ab -k -q -n 100000 -c 10 {url}", ("ab", "apache2-utils"), "plateau"),
    # HTTP/2 (ALPN h2), a new curl each time: one connection each, closed when it ends
    "curl-http2-loop": ("for i in $(seq 1 40); do curl -s --http2 -o /dev/null -w '%{http_version} ' {url}; done",
                        ("curl", "curl"), "plateau"),
}


# httpx-fixed only: httpcore 1.0.9's pool can close a keep-alive connection it has just handed to a waiting
# request (encode/httpcore#1110, open): that request hangs until its read timeout, or is cut. Met once in 9 runs
# of a loaded soak. Allowed: 2 such failures a run (the report saw 2-3 a run with 342 threads; this client has
# ~20 in flight), of the kinds a hung or cut request raises; a CA not trusted fails every request, with ConnectError.
UPSTREAM_RACE = {"httpx-fixed": (2, {"ReadTimeout", "ReadError", "RemoteProtocolError"})}


@pytest.fixture(scope="module")
def over_tls(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    runs = dict(CATALOG_OVER_TLS)
    for name, (command, _, expect) in COMMANDS.items():
        runs[name] = (["run", "--tls", "--cmd", command, "--duration", "4", "--expect", expect], ROOT)
    # 4 at a time: 2 cores, each run mostly waiting on its server's delay; a minute is 20x a run's time
    return run_harness(runs, base, at_once=4, deadline_s=120)


def test_every_catalog_variant_is_judged_right_over_https(over_tls):
    """One test for all (``-k faulty`` selects experiments only: tests/test_selection.py)."""
    wrong = {}
    for name in CATALOG_OVER_TLS:
        code, out, err, data = over_tls[name]
        if code != 0 or data is None:
            wrong[name] = (out + err)[-600:]
        elif not (data["settings"]["tls"] and data["server"]["url"].startswith("https://127.0.0.1:")):
            wrong[name] = f"not over HTTPS: {data['server']}"
        elif data["figures"]["failed"] and not _upstream_race(name, data["figures"]):  # every request succeeded
            wrong[name] = (f"{data['figures']['failed']} requests failed: {data['figures']['errors']}, the first "
                           f"{data['figures']['first_error']}; the server counted {data['server'].get('counted')}")
    assert not wrong, wrong
    assert len(CATALOG_OVER_TLS) == len(VARIANTS) >= 13


def _upstream_race(name: str, figures: dict) -> bool:
    """Failures that httpcore's race (UPSTREAM_RACE) explains: few enough, and of its kinds only."""
    most, kinds = UPSTREAM_RACE.get(name, (0, set()))
    return figures["failed"] <= most and set(figures["errors"]) <= kinds


@pytest.mark.parametrize("name", list(COMMANDS))
def test_real_programs_over_https(over_tls, name):
    tool(*COMMANDS[name][1])
    code, out, err, data = over_tls[name]
    assert code == 0 and data is not None, out + err
    # counted by the server: they got through TLS. A curl a request is a process's start and a TLS handshake:
    # ~0.25 s each on a quiet machine, ~0.4 s in a loaded soak (10 in the run's 4 s, where 11 were asked for)
    assert data["figures"]["requests"] >= 5, data["figures"]
    if name == "curl-http2-loop":
        assert set(data["figures"]["stdout_tail"].split()) == {"2"}, data["figures"]["stdout_tail"]  # HTTP/2 each


def test_http2_multiplexes_on_one_socket_and_a_client_per_request_grows(over_tls):
    """The verdict stays right when many requests share one socket: the peak in flight is
    far above the sockets held, and the plateau is one socket per host."""
    fixed, faulty = over_tls["httpx-h2-fixed"][3], over_tls["httpx-h2-faulty"][3]
    assert fixed["verdict"] == "plateau" and set(fixed["figures"]["residuals"]) == {1}, fixed["figures"]
    assert fixed["figures"]["peak_in_flight"] >= 10, fixed["figures"]  # the schedule's bursts, on that one socket
    # the sweeps' proof assumes a pool uses every idle connection before opening one: not HTTP/2's; said so
    assert fixed["figures"]["exact_check"].startswith("off: the client spoke HTTP/2"), fixed["figures"]
    assert faulty["verdict"] == "growth", faulty["summary"]
    assert faulty["figures"]["residuals"][-1] >= faulty["figures"]["requests"] - 2, faulty["figures"]


def test_a_users_function_trusts_the_ca_through_the_environment(tmp_path):
    module = tmp_path / "my_https_client.py"
    module.write_text("import requests\nSESSION = requests.Session()\n\n"
                      "def get(url):\n    return SESSION.get(url, timeout=5).status_code\n")
    done = subprocess.run([sys.executable, "-m", "harness", "run", "my_https_client:get", "--tls", "--expect",
                           "plateau", "--results-dir", str(tmp_path / "results"), "--plots", "off"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: plateau" in done.stdout


def test_an_experiment_removes_its_certificates(monkeypatch):
    from harness import Experiment, Settings, override, run

    made = []
    original = Certificates.make

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(Certificates, "make", staticmethod(recording))
    result = run(Experiment("stdlib-fixed", settings=override(Settings(), tls="on", cycles=3, rounds=2, plots="off")))
    assert result.complete and len(made) == 1 and made[0].ca.name == "ca.pem"
    assert not made[0].folder.exists()  # removed once the servers stopped
    assert "SSL_CERT_FILE" not in os.environ or os.environ["SSL_CERT_FILE"] != str(made[0].ca)  # put back
