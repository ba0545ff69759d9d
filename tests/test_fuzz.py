"""Fuzzers. The slow server fed generated malformed input: request lines, headers,
bodies, split points, half-closes and hang-ups; after each case it must be alive,
its counters sane, and a normal request on a new connection answered. And every
option fed generated values from the command line, the environment and
``leak_check``: accepted, or refused in one line that names where the value came
from; never a traceback.

Hypothesis keeps no example database here (``database=None``), and its other
files (caches) go to a temporary folder that the root ``conftest.py`` removes
at the end of the session: a test run leaves no file behind.
"""
from __future__ import annotations

import contextlib
import io
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.faces.cli import main
from harness.options import OPTIONS, Settings, override, settings_from
from harness.values import OptionError
from harness.server import ServerProcess

from .test_server import REQUEST_11, read_response
from .waiting import wait_for

SERVER_CASES = 250
OPTION_CASES = 300
READ_S = 0.05  # how long a case listens for an answer: the server answers at once (delay 0) or not at all
HEADER_TIMEOUT_S = 0.3  # the fuzz server's: a half-sent head is closed quickly, not after the default minute

METHODS = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"get", b"G ET", b""])
TARGETS = st.one_of(
    st.sampled_from([b"/", b"/?delay=0", b"/?delay=-1", b"/?delay=nan", b"/?delay=1e9", b"/?delay=",
                     b"/?fault=melt", b"/?fail=x", b"/?fault=truncate&delay=0", b"/?fault=reset&delay=0",
                     b"/?fault=hang", b"/stats", b"*", b"http://h/?delay=0", b"/%00", b"/" + b"a" * 5000]),
    st.binary(max_size=30),
)
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"", b"HTTP/1.1x", b"HTTP/1", b"\x00"])
HEADERS = st.lists(st.one_of(
    st.sampled_from([b"Host: t", b"Content-Length: 5", b"Content-Length: -1", b"Content-Length: 99999999999",
                     b"Content-Length: 3", b"Transfer-Encoding: chunked", b"Expect: 100-continue",
                     b"Connection: close", b"Connection: keep-alive", b"Host", b": empty", b"X-" + b"y" * 9000]),
    st.binary(max_size=40),
), max_size=6)
BODIES = st.one_of(st.just(b""), st.binary(max_size=64), st.just(b"3\r\nabc\r\n0\r\n\r\n"))
REQUESTS = st.one_of(
    st.builds(lambda m, t, v, h, b, end: m + b" " + t + (b" " + v if v else b"") + b"\r\n" + b"\r\n".join(h)
              + (b"\r\n\r\n" if end else b"\r\n") + b, METHODS, TARGETS, VERSIONS, HEADERS, BODIES, st.booleans()),
    st.binary(min_size=1, max_size=200),  # not HTTP at all (TLS hellos, garbage)
    st.just(b"GET /\r\n"),  # HTTP/0.9
    st.just(b""),  # connects, sends nothing
)


@pytest.fixture(scope="module")
def fuzz_server():
    """One server for every case: what one case breaks shows in the next."""
    with ServerProcess(delay=0.0, extra_args=("--header-timeout", str(HEADER_TIMEOUT_S))) as server:
        server.stats()  # its kept-alive /stats connection is the module's, opened here (--socket-leaks)
        yield server


def sane(stats: dict) -> bool:
    return all(v >= 0 for v in stats.values() if isinstance(v, int) and not isinstance(v, bool))


def answered(server: ServerProcess) -> bool:
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(REQUEST_11)
        return read_response(s).startswith(b"HTTP/1.1 200")


@settings(max_examples=SERVER_CASES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=REQUESTS, cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=4),
       half_close=st.booleans(), read=st.booleans())
def test_the_server_survives_malformed_input(fuzz_server, data, cuts, half_close, read):
    points = sorted({c for c in cuts if 0 < c < len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    with socket.create_connection((fuzz_server.host, fuzz_server.port), timeout=5) as s:
        with contextlib.suppress(OSError):  # the server may answer 400 and close before all is sent
            for piece in pieces:
                if piece:
                    s.sendall(piece)  # each piece its own send: split points land in different reads, mostly
            if half_close:
                s.shutdown(socket.SHUT_WR)
        if read:
            s.settimeout(READ_S)
            with contextlib.suppress(OSError):
                while s.recv(65536):
                    pass
    assert fuzz_server.alive(), fuzz_server.tail()
    assert answered(fuzz_server), fuzz_server.tail()
    stats = fuzz_server.stats()
    assert sane(stats), stats


def test_after_the_fuzzing_every_counter_settles(fuzz_server):
    """Once every fuzzing connection is gone: nothing active, nothing hanging, no counter below zero.
    (Runs after the fuzzer in file order; alone it checks a fresh server.)"""
    stats = wait_for(fuzz_server.stats, lambda st: st["active_requests"] == 0 and st["hanging"] == 0
                     and st["open_connections"] == 1, deadline_s=HEADER_TIMEOUT_S + 5)
    assert sane(stats), stats


VALUES = st.one_of(
    st.sampled_from(["", " ", "-1", "0", "1", "2", "0.5", "nan", "inf", "-inf", "1e999", "1e9", "9" * 5000,
                     " 3 ", "off", "none", "auto", "netlink", "psutil", "results", "/", "a\x00b", "\n", "3.0",
                     "0x10", "1_000", "\u0661", "on", "yes", "no", "false", "On "]),
    st.text(max_size=12),
    st.floats().map(repr),
    st.integers().map(str),
)


@settings(max_examples=OPTION_CASES, deadline=None, database=None)
@given(option=st.sampled_from(OPTIONS), value=VALUES)
def test_every_option_value_is_taken_or_refused_in_one_line(option, value):
    try:  # the parser alone is the oracle; anything but OptionError from it is a bug
        option.parse(value)
        parses = True
    except OptionError:
        parses = False
    # the command line: always exit 2 here (the target does not exist), with one line naming the flag if the
    # value was bad; nothing is started before options are checked
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["run", "no-such-variant", f"{option.flag}={value}"])
    assert status == 2 and out.getvalue() == "", out.getvalue()
    line = err.getvalue()
    assert line.count("\n") == 1 and line.startswith("harness: error: "), line
    if not parses:
        assert line.startswith(f"harness: error: {option.flag}: "), line
    # the environment
    try:
        settings_from({}, environ={option.env: value})
    except OptionError as exc:  # its own error starts with it; one against another option's value names both
        assert option.env in str(exc) and "\n" not in str(exc), exc
    else:
        assert parses
    # leak_check's options
    try:
        override(Settings(), **{option.name: value})
    except OptionError as exc:
        assert str(exc).startswith(f"{option.name}=") and "\n" not in str(exc), exc


def test_a_value_of_two_dashes_is_read_as_given():
    """``--results-dir=--``: argparse hands over an empty list, not "--" (hypothesis found it in a soak run, a
    traceback): the value is judged, and refused in one line that names it. (Not among the fuzzed values: to an
    option whose value may be left out, ``--tls=--`` is argparse's bare ``--tls``.)"""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["run", "no-such-variant", "--results-dir=--", "--rounds=--"]) == 2
    assert err.getvalue().count("\n") == 1 and "'--'" in err.getvalue(), err.getvalue()
