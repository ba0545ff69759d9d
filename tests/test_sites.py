"""Where each connection was opened: the line of the code that used the HTTP
library, and the library call; a growth verdict lists the held sockets by it."""
from __future__ import annotations

import functools
import json
import socket
import ssl

import httpx

from harness import Experiment, Settings, run
from harness.faces.cli import main
from harness.sampling.counter import format_sockets
from harness.sampling.sites import recording, site_for

_kept: list = []


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: httpx builds one a client otherwise, loading the CA bundle (~20 ms of CPU
    each, ~100 clients a run) for a server that speaks plain HTTP."""
    return ssl.create_default_context()


def scrape(url: str) -> int:
    client = httpx.Client(verify=_tls())
    _kept.append(client)
    return client.get(url).status_code  # the line each leaked socket must be named by


SCRAPE_LINE = scrape.__code__.co_firstlineno + 3


def test_a_growth_verdict_names_the_line_that_opened_the_sockets(tmp_path):
    try:
        result = run(Experiment(scrape, expect="growth", settings=Settings(results_dir=str(tmp_path))))
    finally:
        for client in _kept:
            client.close()
    assert result.passed, result.explain()
    site = f"tests/test_sites.py:{SCRAPE_LINE} in scrape (via httpx/_client.py:"
    held = [s for s in result.sockets_left if s.state == "ESTABLISHED"]
    assert held and all(result.sites[s.local_port].startswith(site) for s in held), result.sites
    assert f"{len(held)} held, opened at {site}" in format_sockets(result.sockets_left, result.sites)
    assert result.as_dict()["sockets_left"][0]["site"].startswith(site)


def test_a_catalog_variant_is_named_by_its_own_line(tmp_path, capsys):
    assert main(["run", "faulty", "--expect", "plateau", "--results-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "held, opened at harness/clients/faulty.py:" in out and "(via requests/sessions.py:" in out
    data = json.loads((tmp_path / "tcp_count-faulty.json").read_text())
    assert all(s["site"].startswith("harness/clients/faulty.py:") for s in data["sockets_left"]
               if s["state"] == "ESTABLISHED")


def test_recording_notes_a_plain_connect_and_puts_connect_back(start_slow_server):
    server = start_slow_server(delay=0.0)
    before = socket.socket.connect  # wrapped already when the plugin checks this test (--socket-leaks)
    with recording():
        inside = socket.create_connection((server.host, server.port), timeout=5)  # this line
    line = test_recording_notes_a_plain_connect_and_puts_connect_back.__code__.co_firstlineno + 4
    try:
        here = site_for("%s:%d" % inside.getsockname())
        assert here is not None and (here.file, here.line) == ("tests/test_sites.py", line), here
        assert socket.socket.connect is before  # left as it was found
    finally:
        inside.close()
