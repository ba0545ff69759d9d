"""The server's fast path: a request that is one plain head is read by httptools
(llhttp) instead of h11 (``protocol.read_plain_head``). It must read such a head
exactly as h11 does, and leave everything else to h11, which answers its errors.

The fuzz below sets the two parsers side by side on generated heads that are
nearly valid, where the two could disagree (the server fuzzer's malformed input,
``test_fuzz.py``, goes through this path too)."""
from __future__ import annotations

import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.server import protocol
from harness.server.protocol import PlainHead, SlowServer, read_plain_head, split_target


CASES = 400

PLAIN = b"GET /?delay=0 HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n"

TOKEN = st.from_regex(rb"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}\Z")
VALUE = st.one_of(st.from_regex(rb"\A[ -~]{0,20}\Z"),  # printable ASCII, spaces around it included
                  st.binary(max_size=12).map(lambda b: bytes(c for c in b if c in b" \t" or 0x21 <= c)))  # obs-text
NAMES = st.one_of(TOKEN, TOKEN, st.sampled_from([b"Connection", b"Content-Length", b"Expect", b"Upgrade",
                                                  b"Transfer-Encoding", b"Host", b"Host ", b"X y", b""]))
TARGETS = st.one_of(st.from_regex(rb"\A/[!-~]{0,20}\Z"),  # a path and a query of visible characters
                    st.sampled_from([b"/stats", b"/?delay=0", b"*", b"http://h/x", b"/a b", b"/%zz", b"/\x7f"]),
                    st.binary(min_size=1, max_size=12).filter(lambda t: not set(t) & set(b" \r\n")))
# a head h11 may well take, where the two parsers could disagree: a Host, then up to 5 headers
NEARLY_VALID = st.builds(
    lambda method, target, version, headers, end: method + b" " + target + b" " + version + b"\r\n"
    + b"".join(name + b":" + value + b"\r\n" for name, value in headers) + end,
    st.sampled_from([b"GET", b"GET", b"HEAD", b"POST", b"OPTIONS", b"DELETE", b"get", b"BREW"]),
    TARGETS,
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"http/1.1"]),
    st.lists(st.tuples(NAMES, VALUE), max_size=5).map(lambda hs: [(b"Host", b"t")] + hs),
    st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"", b"\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n", b"\r\nbody"]),
)


def h11_reads(data: bytes) -> tuple[h11.Request, tuple[bytes, bool]] | None:
    """The request h11 reads from ``data`` once it ends there, and what it left unread;
    None when h11 refuses it or wants more."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        request = conn.next_event()
        if not isinstance(request, h11.Request) or not isinstance(conn.next_event(), h11.EndOfMessage):
            return None
    except h11.RemoteProtocolError:
        return None
    return request, conn.trailing_data


@settings(max_examples=CASES, deadline=None, database=None)
@given(data=NEARLY_VALID)
def test_a_head_read_by_httptools_is_the_request_h11_reads(data):
    head = read_plain_head(data)
    if head is None:
        return  # h11's to read: whatever it makes of it is what the server did before
    read = h11_reads(data)
    assert read is not None, f"httptools took a head h11 refuses: {data!r}"
    request, unread = read
    assert (head.method, head.target, head.http_version) == (request.method, request.target, request.http_version)
    assert head.headers == list(request.headers)
    assert unread == (b"", False)


def test_a_plain_head_is_read_whole():
    assert read_plain_head(PLAIN) == PlainHead(b"GET", b"/?delay=0", [(b"host", b"t"), (b"connection", b"keep-alive"),
                                                                       (b"accept", b"*/*")], b"1.1")
    assert read_plain_head(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n").http_version == b"1.0"


@pytest.mark.parametrize("data", [
    PLAIN[:-1],  # not whole yet
    PLAIN + PLAIN,  # pipelined: h11 keeps the second for after the first answer
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",  # a body to frame
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n",  # a 100 to send
    b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",  # a switch to refuse
    b"GET / HTTP/1.1\r\n\r\n",  # no Host: h11's 400 says so
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\nHost: t\n\n",  # bare LFs: h11 takes them, so h11 reads them
    b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
    b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"y" * protocol.PLAIN_HEAD_MAX + b"\r\n\r\n",  # longer than h11 waits for
])
def test_anything_else_is_left_to_h11(data):
    assert read_plain_head(data) is None


def test_without_httptools_or_with_parser_h11_h11_reads_every_request(monkeypatch):
    assert SlowServer("127.0.0.1", 0, 0.0, 60.0).read_plain_head is read_plain_head
    assert SlowServer("127.0.0.1", 0, 0.0, 60.0, parser="h11").read_plain_head is None
    monkeypatch.setattr(protocol, "httptools", None)
    assert read_plain_head(PLAIN) is None
    assert SlowServer("127.0.0.1", 0, 0.0, 60.0).read_plain_head is None


# targets where a plain path and urlsplit could part: "//" (a host), a query, a fragment, a scheme, what urlsplit
# strips (tabs, CR, LF, leading controls and spaces), bytes beyond ASCII
TARGET_BYTES = st.sampled_from(list(b"/?#&=;:%+. \t\r\n\x00\x1fab") + [0x7f, 0xe9])
SPLIT_TARGETS = st.one_of(TARGETS, st.lists(TARGET_BYTES, max_size=14).map(bytes),
                          st.lists(TARGET_BYTES, max_size=14).map(lambda b: b"/" + bytes(b)))


@settings(max_examples=CASES, deadline=None, database=None)
@given(target=SPLIT_TARGETS)
def test_a_target_is_split_as_urlsplit_and_parse_qs_split_it(target):
    """The server routes (/stats, /hold) and reads ?delay= and ?fault= by ``split_target``, whose plain
    paths skip urlsplit and parse_qs; whatever the target, it must give what they give."""
    try:
        split = urlsplit(target.decode("latin-1"))
    except ValueError:  # "//[": an IPv6 host never closed
        with pytest.raises(ValueError):
            split_target(target)
        return
    assert split_target(target) == (split.path, parse_qs(split.query))


def test_a_plain_path_skips_urlsplit(monkeypatch):
    monkeypatch.setattr(protocol, "urlsplit", None)  # called: a TypeError
    assert split_target(b"/") == ("/", {})
    assert split_target(b"/stats") == ("/stats", {})


def test_a_server_that_reads_only_plain_heads_never_loads_h11():
    """h11 (~0.8 MB of a server's memory) is imported at the first request that is not one plain head."""
    probe = ("import sys, harness.server.main, harness.server.protocol as p; "
             "p.read_plain_head(b'GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n'); print('h11' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
