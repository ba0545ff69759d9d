"""The slow server's protocol: one asyncio event loop serves every connection;
httptools reads a plain request head, h11 the rest. A pending response is a timer,
not a thread, so thousands of slow connections cost little. The delay counts from
when the request's data arrived (``SlowServer.arrival``: the kernel's word where
the loop reads late), so a request that waited behind thousands of others to be
read is not answered late.

Every request waits the server's delay (or ``?delay=S``), then gets ``200`` with
a short body, ``Content-Length`` and ``Connection: keep-alive``; the connection
stays open for the next request (HTTP/1.1, and HTTP/1.0 clients that ask for
keep-alive). ``?fault=NAME`` (``faults.py``) misbehaves instead. ``GET /stats``
answers at once with the counters as JSON.

With a TLS context (``--tls``, ``tls.py``) each accepted connection's handshake runs
in a task of its own, so one can be stalled on purpose (``/stall-handshakes``); a
connection that chooses HTTP/2 (ALPN ``h2``, or h2c's preface) is handed to the
session maker it was given (``http2.H2Session``), whose streams share
``RequestLifecycle`` with HTTP/1.1 requests.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import re
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:  # h11 is imported at the first request that is not one plain head (~0.8 MB a server spared)
    import h11

try:  # llhttp, in C: a plain request head in ~1.3 us, where h11 takes ~17 (the bench's burst of 10,000 at once)
    import httptools
except ImportError:  # optional: without it h11 reads every request
    httptools = None

from ..values import MAX_DELAY_S  # ?delay= and --delay: at most an hour, so every run ends
from ..tcp_info import LAST_DATA_RECV, LAST_DATA_RECV_AT, tick_s
from .deadlines import Deadline, Deadlines
from .faults import BODY, BY_NAME, COUNTERS, FAULT_QUERY, GAUGES, Fault, Faults, response_head
from .shared import (ACCEPTING, DEADLINE_NS, GENERATION, NO_THEN, REACHED, STALL, STARTED, THEN_NS, UNTIL, Shared,
                     WorkerStats)

MAX_BUFFERED_BYTES = 1 << 20  # stop reading from a client that sends this much unanswered
TCP_INFO_READ = LAST_DATA_RECV_AT + LAST_DATA_RECV.size  # of a socket's tcp_info, the bytes asked for (arrival)
LOOP_CLOCK_S = 0.001  # uvloop's clock counts whole ms: a reading of it may be up to this far behind


@dataclass
class ServerStats:
    """Counters served by ``GET /stats``, with one per fault (``faults.COUNTERS``).
    Connection counts include /stats callers."""

    open_connections: int = 0
    active_requests: int = 0
    peak_active_requests: int = 0  # the most requests ever waiting for their answer at once
    connecting: int = 0  # connections accepted that have sent nothing yet (for at most CONNECTING_S)
    # the most ever in flight at once, a connection counted from its accept (active_requests + connecting): a client
    # holds its socket from its connect, and on a busy machine its request's bytes may come a while after
    peak_in_flight: int = 0
    requests_received: int = 0  # every request parsed whole, /stats left out: what a verdict may rest on
    requests_served: int = 0
    hung_up_early: int = 0
    connections_accepted: int = 0
    stats_requests: int = 0
    idle_closed: int = 0  # keep-alive connections the server closed for idling (--idle-close)
    holds_reached: int = 0  # /hold barriers met: that many requests were in flight at once
    holds_missed: int = 0  # /hold barriers whose deadline came first
    # requests in flight when the latest barrier's deadline came first (0 until one does; a new barrier clears it):
    # how far a burst got in its window, so the next can be given the time its pace needs
    in_flight_at_miss: int = 0
    # of that barrier (one process; 0 with --workers): ms from the last request that joined it to its deadline. A
    # pool capped in flight reaches its cap and then sends nothing more; one slow to start its burst still sends
    flat_at_miss_ms: int = 0
    header_timeouts: int = 0  # connections closed for not sending a whole request head in time (--header-timeout)
    bad_requests: int = 0  # answered 400 and closed: not an HTTP/1.x request
    tls_handshakes: int = 0  # TLS handshakes completed (--tls)
    tls_failures: int = 0  # TLS handshakes that failed or timed out (the client gave up, or spoke no TLS)
    tls_stalled: int = 0  # handshakes stalled on purpose (/stall-handshakes): never answered
    http2_connections: int = 0  # connections that spoke HTTP/2 (ALPN h2, or h2c's preface)
    accepting: bool = True
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def as_dict(self) -> dict:
        data = asdict(self)
        faults = data.pop("faults")
        return {**data, **faults}

    def total(self, name: str) -> int:
        """A counter of the whole server: this process's (``shared.WorkerStats`` sums the workers')."""
        return getattr(self, name)

    def note_in_flight(self) -> None:
        """A request started: raise the peaks to what is in flight now."""
        self.peak_active_requests = max(self.peak_active_requests, self.active_requests)
        self.peak_in_flight = max(self.peak_in_flight, self.active_requests + self.connecting)


STATS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ServerStats))  # in order: --workers' shared rows

# what /stats reports that rises and falls (not a count of events): a delta of these means nothing
STATS_GAUGES = frozenset({"open_connections", "active_requests", "peak_active_requests", "connecting",
                          "peak_in_flight", "accepting"}) | GAUGES
# A connection that has sent nothing counts as in flight this long at most. 1 s: generous for the gap between a
# starved client's connect and its request (not measured directly: the loaded soak's false growth rose within
# 0.9-s windows), yet short, so that sockets a client opens and never uses stop counting, rise above the peak and
# read as a leak.
CONNECTING_S = 1.0
HANG_S = 10 ** 7  # "never": a timer this far out is cancelled when the client hangs up or the server stops

OK_KEEP_ALIVE = response_head(b"200 OK", len(BODY), True) + BODY
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# After a FIN with a request pending, the 1xx probe is answered by RST if the client closed its socket:
# on loopback within microseconds; checked every 20 ms for 1 s, which covers a loaded machine and a LAN.
# Then every 0.5 s while the request is pending, each time with another 1xx (HTTP/1.1 clients skip any number):
# a client that half-closed, read the first 1xx and closed later (a fuzz case on a loaded machine, over 1 s) left
# nothing unread, so its close sent no RST; only a new write draws one. It would otherwise hold a never-answered
# request open for ever.
PROBE_EVERY_S = 0.02
PROBE_CHECKS = 50
PROBE_LATER_EVERY_S = 0.5
REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \r\n]+ HTTP/1\.[01]\r?\n\Z")
H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # an h2c client with prior knowledge sends this first
HEADER_TIMEOUT_S = 60.0  # default: no experiment's client takes seconds to send a head; a minute never cuts one


PARSERS = ("auto", "h11")  # --parser: auto reads plain heads with httptools where installed; h11 reads everything
PLAIN_HEAD_MAX = 16 * 1024  # h11's own limit on a head still incomplete; a longer one is h11's to read
# a head with one of these goes to h11: a body to read or skip, a 100-continue to send, a protocol switch to refuse
NOT_PLAIN = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})


@dataclass(slots=True)
class PlainHead:
    """A request that is one head and nothing else, read by llhttp: what the server reads of an
    ``h11.Request`` (header names lowercased, as h11 gives them)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes


class _HeadReader:
    """httptools' callbacks for one head."""

    __slots__ = ("target", "headers", "complete")

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value.strip()))

    def on_message_complete(self) -> None:
        self.complete = True


def read_plain_head(data: bytes) -> PlainHead | None:
    """``data`` as a request when it is exactly one whole HTTP/1.x head with one Host, no body
    and nothing that asks for more (``NOT_PLAIN``): what every client of the harness sends.
    None for anything else, and without httptools: h11 reads it, and answers its errors, as
    before. ~3 us with the checks."""
    if httptools is None or len(data) > PLAIN_HEAD_MAX or data.find(b"\r\n\r\n") != len(data) - 4:
        return None
    reader = _HeadReader()
    parser = httptools.HttpRequestParser(reader)
    try:
        parser.feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    version = parser.get_http_version()
    if not reader.complete or version not in ("1.0", "1.1"):
        return None
    hosts = 0
    for name, _ in reader.headers:
        if name in NOT_PLAIN:
            return None
        hosts += name == b"host"
    if hosts != 1:  # h11 refuses none (HTTP/1.1) or several: its 400 says why
        return None
    return PlainHead(parser.get_method(), reader.target, reader.headers, version.encode())


if TYPE_CHECKING:
    Request = h11.Request | PlainHead  # a request head, whichever parser read it


def split_target(target: bytes) -> tuple[str, dict[str, list[str]]]:
    """A request target's path and its query's fields, as ``urlsplit`` and ``parse_qs`` read them
    (ValueError where urlsplit refuses the target). A plain path without a query (``/``, what
    nearly every request asks for) is taken as it is (~0.2 us; urlsplit and parse_qs cost
    ~2 us, ~20 ms of the server's time when 10,000 requests arrive together)."""
    if PLAIN_PATH.match(target):
        return target.decode("latin-1"), {}
    split = urlsplit(target.decode("latin-1"))
    return split.path, parse_qs(split.query)


# a path urlsplit takes as it is: from "/" (not "//", a host), without a query, a fragment or what it removes
PLAIN_PATH = re.compile(rb"/(?!/)[^?#\t\r\n]*\Z")


def _wants_keep_alive(request: Request) -> bool:
    """RFC 9112 §9.3: 1.1 persists unless ``close``; 1.0 only with ``keep-alive``."""
    tokens = set()
    for name, value in request.headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    if b"close" in tokens:
        return False
    if request.http_version == b"1.0":
        return b"keep-alive" in tokens
    return True


class RequestLifecycle:
    """A request from whole to answered: routing (/stats, /hold, /stall-handshakes), the delay
    from when its data arrived, the faults, and a client that hangs up first. Shared by an
    HTTP/1.1 connection and an HTTP/2 stream (``http2.py``), which provide ``_respond``,
    ``_abandon``, ``_cancel_idle_close`` and the fault actions (``faults.Struck``)."""

    server: SlowServer
    request: Request | None
    arrived: float  # loop time the request's data arrived
    timer: asyncio.TimerHandle | None  # the pending answer
    pending_fault: Fault | None
    request_started: float
    closed: bool
    peer: str

    def _respond(self, request: Request, status: bytes, body: bytes, ctype: bytes) -> None:
        raise NotImplementedError

    def _abandon(self) -> None:
        """The client hung up before its answer: drop what is left of it."""
        raise NotImplementedError

    def _cancel_idle_close(self) -> None:
        raise NotImplementedError

    def _request_complete(self) -> None:
        request = self.request
        assert request is not None
        try:
            path, query = split_target(request.target)
        except ValueError as exc:  # "//[": urlsplit reads an IPv6 host never closed (once a traceback, no answer)
            self._respond(request, b"400 Bad Request", f"bad request target: {exc}\n".encode(), b"text/plain")
            return
        if path == "/stats":
            self.server.stats.stats_requests += 1
            body = json.dumps(self.server.stats.as_dict()).encode()
            self._respond(request, b"200 OK", body, b"application/json")
            return
        if path == "/hold":  # the harness's own, like /stats: a barrier for the next burst
            self.server.stats.stats_requests += 1
            self._respond(request, *self.server.set_hold(query))
            return
        if path == "/stall-handshakes":  # the harness's own: the next N TLS handshakes stall
            self.server.stats.stats_requests += 1
            self._respond(request, *self.server.set_stall(query))
            return
        self.server.stats.requests_received += 1
        delay = self.server.delay
        try:
            if "delay" in query:
                delay = float(query["delay"][0])
                if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY_S:
                    raise ValueError
        except ValueError:
            self._respond(request, b"400 Bad Request", f"bad delay: give seconds from 0 to {MAX_DELAY_S:g}\n".encode(),
                          b"text/plain")
            return
        named = next((query[key][0] for key in FAULT_QUERY if key in query), None) if query else None
        if named is not None and named not in BY_NAME:
            self._respond(request, b"400 Bad Request", f"unknown fault {named}\n".encode(), b"text/plain")
            return
        number = self.server.next_request_number()
        faults = self.server.faults
        fault = BY_NAME[named] if named is not None else None
        if fault is None and faults.fault and number % faults.every == 0:
            fault = BY_NAME[faults.fault]
        stats = self.server.stats
        if fault is not None and fault.never_answers:
            delay = HANG_S
            stats.faults[fault.counter] += 1  # a gauge: it falls again when the client hangs up
        self.pending_fault = fault
        stats.active_requests += 1
        stats.note_in_flight()
        self.request_started = time.monotonic()
        # from when the data arrived, not from when it was parsed: with thousands of requests
        # arriving at once, the last one parsed would otherwise wait its place in the queue on top
        loop = asyncio.get_running_loop()
        hold = self.server.current_hold()
        if hold is not None and delay < HANG_S:
            if hold.reached:  # the burst after its barrier: answered after ``then``, not the delay
                delay = hold.then if hold.then is not None else delay
                self.timer = loop.call_at(self.arrived + delay, self._delay_over, request)
            else:  # held: answered once the barrier is reached, or at its deadline
                self.timer = loop.call_at(hold.deadline + delay, self._delay_over, request)
                hold.waiting.append((self, request, delay))
                hold.last_join = loop.time()
                self.server.check_hold()
        else:
            self.timer = loop.call_at(self.arrived + delay, self._delay_over, request)
        self._cancel_idle_close()

    def _delay_over(self, request: Request) -> None:
        self.timer = None
        stats = self.server.stats
        stats.active_requests -= 1
        fault, self.pending_fault = self.pending_fault, None
        if fault is not None and fault.strike is not None:
            stats.faults[fault.counter] += 1
            fault.strike(self)
            return
        stats.requests_served += 1
        self._respond(request, b"200 OK", BODY, b"text/plain")
        limit = self.server.faults.stop_accepting_after
        if limit is not None and stats.accepting and stats.total("requests_served") >= limit:
            self.server.stop_accepting()

    def _hung_up(self) -> None:
        assert self.timer is not None
        fault, self.pending_fault = self.pending_fault, None
        if fault is not None and fault.never_answers:
            self.server.stats.faults[fault.counter] -= 1
        self.timer.cancel()
        self.timer = None
        self.server.stats.active_requests -= 1
        self.server.stats.hung_up_early += 1
        waited = time.monotonic() - self.request_started
        self.server.log(f"client {self.peer} hung up {waited:.3f} s into its request; not answered")
        self._abandon()


class SlowHTTPConnection(asyncio.Protocol, RequestLifecycle):
    """One client connection: parse a request, answer after the delay, repeat."""

    def __init__(self, server: SlowServer, stalled: bool = False) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        # h11, made when a request is not one plain head (``read_plain_head``), and anew for each such request
        self.parser: h11.Connection | None = None
        self.request: Request | None = None
        self.request_started = 0.0
        # when this connection's latest data arrived (SlowServer.arrival), or was free to be read: its last answer
        self.arrived = 0.0
        self.reading_paused = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.pending_fault: Fault | None = None  # the fault the pending request will get, if any
        self.head_timer: Deadline | None = None  # a request head must arrive whole in time (server.head_deadlines)
        self.half_closed = False  # the client sent FIN after its request: answer, then close
        self.probes = 0
        self.closed = False
        self.stalled = stalled  # a TLS handshake stalled on purpose: what the client sends is read and dropped
        self.h2: Any = None  # HTTP/2 chosen (ALPN h2, or h2c's preface): its session (http2.H2Session)
        self.fresh = True  # nothing received yet: an h2c preface may come
        self.connecting: Deadline | None = None  # counted in ``connecting`` until its first bytes

    @property
    def peer(self) -> str:
        """The client's address and port, for a log line: made when asked (both loops keep the address after the
        close), not a string a connection (~64 bytes each)."""
        address = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{address[0]}:{address[1]}" if address else "?"

    # asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # not isinstance(transport, asyncio.Transport): uvloop's transports do not derive from it
        # (an assert here once failed every request under uvloop)
        # TCP_NODELAY is set already: asyncio and uvloop set it on every TCP transport (tests/test_server_http.py)
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self.server.stats.open_connections += 1
        self.server.stats.connections_accepted += 1
        if not self.stalled:
            self._count_connecting()
        if self.server.tls is not None and not self.stalled:
            self.server.stats.tls_handshakes += 1  # called once the handshake is over
            ssl_object = transport.get_extra_info("ssl_object")
            if self.server.http2 is not None and ssl_object is not None \
                    and ssl_object.selected_alpn_protocol() == "h2":
                self._speak_http2()
                return
        self._start_head_timer()  # a connection that never sends a whole request is not held for ever

    def data_received(self, data: bytes) -> None:
        if self.stalled:
            return  # a stalled handshake: read (so a hang-up is seen) and dropped
        if self.fresh:
            self.fresh = False
            self._connected()
            # h2c with prior knowledge (curl --http2-prior-knowledge): HTTP/2 from the first byte
            if self.h2 is None and self.server.http2 is not None and data.startswith(H2C_PREFACE):
                self._cancel_head_timer()
                self._speak_http2()
        if self.h2 is not None:
            self.h2.data_received(data)
            return
        self.arrived = max(self.arrived, self.server.arrival(self.transport))
        if self.parser is None:  # no request begun: a plain head is read at once, anything else by a fresh h11
            if self.request is None and self.server.read_plain_head is not None:
                head = self.server.read_plain_head(data)
                if head is not None:
                    self._cancel_head_timer()
                    self.request = head
                    self._request_complete()
                    return
            import h11  # the first time: ~10 ms, and ~0.8 MB

            self.parser = h11.Connection(h11.SERVER)
            self._start_head_timer()
        self.parser.receive_data(data)
        self._advance()

    def eof_received(self) -> bool:
        if self.timer is None or self.stalled or self.h2 is not None:
            return False  # nothing pending: let asyncio close our side too
        # FIN with a request pending: a half-close (shutdown(SHUT_WR), which HTTP allows: answer, then
        # close) or a hang-up (close()). A 1xx, which every HTTP/1.1 client skips, tells them apart: a
        # socket that was closed answers it with RST.
        self.half_closed = True
        assert self.transport is not None
        self.transport.write(CONTINUE)
        self._probe_later()
        return True  # keep our side open for the answer

    def _probe_later(self) -> None:
        every = PROBE_EVERY_S if self.probes < PROBE_CHECKS else PROBE_LATER_EVERY_S
        asyncio.get_running_loop().call_later(every, self._probe)

    def _probe(self) -> None:
        """After the 1xx: a reset socket means the client hung up; checked PROBE_CHECKS times
        quickly, then every PROBE_LATER_EVERY_S until the request ends (answered or hung up)."""
        if self.closed or self.timer is None or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._hung_up()  # RST: ECONNRESET, or EPIPE in CLOSE_WAIT
            return
        self.probes += 1
        if self.probes >= PROBE_CHECKS:
            self.transport.write(CONTINUE)  # a closed peer answers it with RST, seen at the next check
        self._probe_later()  # ends with the request: the checks above return once it is answered or gone

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected()
        self._cancel_idle_close()
        self._cancel_head_timer()
        if self.h2 is not None:
            self.h2.connection_lost()
        if self.timer is not None:
            self._hung_up()
        if not self.closed:
            self.closed = True
            self.server.connections.discard(self)
            self.server.stats.open_connections -= 1

    # request handling --------------------------------------------------
    def _advance(self) -> None:
        """Parse events until a whole request is in, unless one is pending."""
        import h11  # imported already (data_received): a lookup

        while self.timer is None and not self.closed and self.parser is not None:
            try:
                event = self.parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._send_error(exc)
                return
            if event is h11.NEED_DATA:
                if not self._first_line_ok():
                    self._bad_request("not an HTTP/1.x request line")
                    return
                self._limit_buffering()
                return
            if isinstance(event, h11.Request):
                self._cancel_head_timer()
                if event.http_version not in (b"1.0", b"1.1"):
                    self._bad_request(f"HTTP/{event.http_version.decode('latin-1')} is not HTTP/1.x")
                    return
                self.request = event
                if self.parser.they_are_waiting_for_100_continue:
                    assert self.transport is not None
                    self.transport.write(CONTINUE)  # Expect: 100-continue: send the body
            elif isinstance(event, h11.EndOfMessage):
                self._request_complete()
            elif isinstance(event, h11.ConnectionClosed):
                return
            # h11.Data: a request body, read and ignored.

    def _first_line_ok(self) -> bool:
        """While a request head is incomplete: once its first line is whole, it must be
        ``METHOD TARGET HTTP/1.x`` (an HTTP/0.9 ``GET /`` would otherwise wait for ever)."""
        assert self.parser is not None
        buffered = self.parser.trailing_data[0].lstrip(b"\r\n")
        end = buffered.find(b"\n")
        return end < 0 or REQUEST_LINE.match(buffered[: end + 1]) is not None

    def _count_connecting(self) -> None:
        self.server.stats.connecting += 1  # in the peak from the next request's start (the harness's own /stats
        # connection, opened when nothing is in flight, would otherwise make a peak of 1 out of nothing)
        self.connecting = self.server.connecting_deadlines.add(self)

    def _connected(self) -> None:
        """No longer counted as connecting: its first bytes came, it closed, or CONNECTING_S passed."""
        if self.connecting is not None:
            self.server.connecting_deadlines.cancel(self.connecting)
            self.connecting = None
            self.server.stats.connecting -= 1

    def _start_head_timer(self) -> None:
        if self.head_timer is None and self.server.head_deadlines is not None:
            self.head_timer = self.server.head_deadlines.add(self)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            assert self.server.head_deadlines is not None
            self.server.head_deadlines.cancel(self.head_timer)
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.closed or self.transport is None:
            return
        self.server.stats.header_timeouts += 1
        started = self.parser is not None and bool(self.parser.trailing_data[0])
        if started:  # part of a head: say why before closing
            body = b"request head not complete in time\n"
            self.transport.write(response_head(b"408 Request Timeout", len(body), False) + body)
        self.transport.close()

    def _limit_buffering(self) -> None:
        assert self.parser is not None
        buffered = len(self.parser.trailing_data[0])
        if buffered > MAX_BUFFERED_BYTES and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _respond(self, request: Request, status: bytes, body: bytes, ctype: bytes) -> None:
        assert self.transport is not None
        keep_alive = _wants_keep_alive(request)
        if status == b"200 OK" and body is BODY and keep_alive and request.method != b"HEAD":
            response = OK_KEEP_ALIVE  # the common case, thousands at once: nothing to build
        else:
            head = response_head(status, len(body), keep_alive, ctype)
            response = head if request.method == b"HEAD" else head + body
        # One write: headers and body leave together (no Nagle wait between them).
        self.transport.write(response)
        if not keep_alive or self.half_closed:  # after a half-close the answer is the last word
            self.transport.close()
            return
        leftover = self.parser.trailing_data[0] if self.parser is not None else b""  # None: a plain head, all read
        # a request sent behind this one (pipelined, or held in the kernel while reading paused) waits its delay
        # from now, as it would in a server that works through a connection's requests one at a time
        self.arrived = asyncio.get_running_loop().time()
        self.parser = None
        self.request = None
        idle_close = self.server.faults.idle_close
        if idle_close is not None and not leftover:
            self.idle_timer = asyncio.get_running_loop().call_later(idle_close, self._close_idle)
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        if leftover:  # pipelined: the next request is already here
            self.data_received(leftover)

    def _close_idle(self) -> None:
        self.idle_timer = None
        if self.transport is not None and self.timer is None and not self.closed:
            self.server.stats.idle_closed += 1
            self.transport.close()

    def _cancel_idle_close(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _send_error(self, exc: h11.RemoteProtocolError) -> None:
        self._bad_request(str(exc))

    def _bad_request(self, why: str) -> None:
        """400 and close: what cannot be an HTTP/1.x request gets no second chance."""
        assert self.transport is not None
        self._cancel_head_timer()
        self.server.stats.bad_requests += 1
        body = f"bad request: {why}\n".encode()
        self.transport.write(response_head(b"400 Bad Request", len(body), False) + body)
        self.transport.close()
        self.parser = None

    # what a fault may do (faults.Struck) -------------------------------
    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()

    def _abandon(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _speak_http2(self) -> None:
        assert self.server.http2 is not None
        self.parser = None
        self.server.stats.http2_connections += 1
        self.h2 = self.server.http2(self)

    def close_uncleanly(self) -> None:
        """FIN after what was written, without TLS's close_notify: the TCP connection ends
        under the TLS session, as a crashed peer or a middlebox ends it."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # through a duplicate of its descriptor: uvloop's transport sockets offer no shutdown(); shutting
            # down one descriptor ends the connection for both
            with socket.socket(fileno=os.dup(sock.fileno())) as duplicate:
                try:
                    duplicate.shutdown(socket.SHUT_WR)  # after the bytes handed to the kernel (a small answer: all)
                except OSError:
                    pass
        self.transport.abort()

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

@dataclass
class Hold:
    """A barrier: answers wait until ``until`` requests are in flight at once, or the
    loop time ``deadline``; then each gets ``then`` (or, without it, its delay) from that
    moment, and requests arriving before ``deadline`` get ``then`` too. A barrier with
    ``then`` whose deadline comes first lets its burst go the same way, for ``span`` more
    seconds: a burst capped in flight below the barrier is not left to crawl at the delay."""

    until: int
    deadline: float
    then: float | None = None  # once reached, answers come this many seconds after their request (None: the delay)
    span: float = 0.0  # seconds from its setting to its deadline
    reached: bool = False
    waiting: list = field(default_factory=list)  # (connection, request, delay)
    generation: int = 0  # --workers: the shared barrier's generation (shared.py)
    last_join: float = 0.0  # loop time a request last joined ``waiting`` (its setting, before one does)
    owner: bool = True  # set by this process (--workers: another worker's is adopted): it counts a miss


class SlowServer:
    """Owns the listener, the open connections and the counters."""

    def __init__(self, host: str, port: int, delay: float, track_interval: float, faults: Faults = Faults(),
                 header_timeout: float | None = HEADER_TIMEOUT_S, tls: ssl.SSLContext | None = None,
                 http2: Callable[[SlowHTTPConnection], Any] | None = None, parser: str = "auto",
                 shared: Shared | None = None) -> None:
        self.faults = faults
        # --workers: one of several processes on the port, sharing counters, barrier and faults' count (shared.py)
        self.shared = shared
        # reads a plain head at once (httptools), or None: h11 reads every request (--parser h11, or no httptools)
        self.read_plain_head = read_plain_head if parser == "auto" and httptools is not None else None
        self.tls = tls  # HTTPS: each connection's handshake runs on the event loop (start_tls)
        self.stall_handshakes = 0  # the next N TLS handshakes are never answered (/stall-handshakes?next=N)
        self.http2 = http2  # makes a connection's HTTP/2 session (http2.H2Session); None: HTTP/1.1 only
        self.header_timeout = header_timeout
        # a connection's two deadlines, each queue on one loop timer (deadlines.py: ~1.2 KB a connection less)
        self.connecting_deadlines: Deadlines[SlowHTTPConnection] = Deadlines(CONNECTING_S,
                                                                             SlowHTTPConnection._connected)
        self.head_deadlines: Deadlines[SlowHTTPConnection] | None = (
            Deadlines(header_timeout, SlowHTTPConnection._head_timed_out) if header_timeout is not None else None)
        self.requests_started = 0
        self.hold_generation = 0  # --workers: the shared barrier's generation this process has taken in
        self.host = host
        self.port = port
        self.address = host  # the address actually bound, once listening
        self.delay = delay
        self.track_interval = track_interval
        self.stats: ServerStats | WorkerStats = ServerStats() if shared is None else shared.stats()
        self.connections: set[SlowHTTPConnection] = set()
        self.hold: Hold | None = None
        self.listener: asyncio.base_events.Server | None = None
        self.tls_listener: socket.socket | None = None  # HTTPS: accepted by _accept_tls
        self.tls_accepting: asyncio.Future | None = None
        self.handshakes: set[asyncio.Future] = set()  # TLS handshakes under way
        self.stopped = asyncio.Event()
        self._batch_time: float | None = None
        self._stamps_each_callback = False  # set at start(): True under uvloop (batch_time)
        # what the kernel's "last received N ms ago" may be off by (arrival): its tick, and the loop clock's ms
        self._arrival_margin_s = tick_s() + LOOP_CLOCK_S

    def arrival(self, transport: asyncio.BaseTransport) -> float:
        """When the data a callback of ``transport`` reads arrived (loop time, s): never earlier
        than it did, and not as late as the read when the loop reads late (10,000 requests at
        once: one process read the last of them 116 ms after they came).

        The kernel says how long ago the socket last received data (tcp_info's
        last_data_recv, in whole ticks: 4 ms at HZ=250); less a tick and a ms for the tick's
        rounding and uvloop's whole-ms clock, so that it is never early. The batch's stamp
        (``batch_time``) where that is earlier, or where the socket gives no tcp_info (not
        Linux, not TCP, closed). ~0.7 us.
        """
        stamp = self.batch_time()
        sock = transport.get_extra_info("socket")
        if sock is None:
            return stamp
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_READ)
            waited_s = LAST_DATA_RECV.unpack_from(info, LAST_DATA_RECV_AT)[0] / 1000 - self._arrival_margin_s
        except (OSError, AttributeError, struct.error):  # AttributeError: no TCP_INFO here (not Linux)
            return stamp
        if waited_s <= 0:
            return stamp
        return min(stamp, asyncio.get_running_loop().time() - waited_s)

    def batch_time(self) -> float:
        """The loop time when the loop began running the current batch of callbacks:
        no earlier than the arrival of the data a callback of the batch reads.

        asyncio runs, in one batch, the callbacks of every socket one select()
        found ready; a callback scheduled with call_soon runs in the next batch.
        So the first caller in a batch stamps it, and everyone after it in the
        same batch shares the stamp: roughly when their data arrived, however
        long the callbacks before them took. Costs ~1 us.

        uvloop (libuv) runs the callbacks of up to 48 polls of 1,024 sockets
        before a call_soon callback, so a stamp shared that way would come before
        the later polls' data arrived (10,000 requests at once: answers up to
        ~45 ms early). There each caller reads the clock (live, whole ms).
        """
        if self._stamps_each_callback:
            return asyncio.get_running_loop().time()
        if self._batch_time is None:
            loop = asyncio.get_running_loop()
            self._batch_time = loop.time()
            loop.call_soon(self._end_batch)
        return self._batch_time

    def _end_batch(self) -> None:
        self._batch_time = None

    @staticmethod
    def log(message: str) -> None:
        print(f"[server {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    async def start(self, listening: socket.socket | None = None) -> None:
        """Listen on exactly one socket: the first address ``host`` resolves to (a name
        such as ``localhost`` may resolve to several; port 0 would give each its own);
        or on ``listening``, bound already (a worker's, ``workers.py``)."""
        loop = asyncio.get_running_loop()
        self._stamps_each_callback = type(loop).__module__.partition(".")[0] == "uvloop"
        if listening is None:
            listening = bind_listener(self.host, self.port)
        if self.shared is not None:
            loop.add_reader(self.shared.doorbell, self._doorbell)
        if self.tls is None:
            self.listener = await loop.create_server(lambda: SlowHTTPConnection(self), sock=listening,
                                                     backlog=_backlog())
        else:  # HTTPS: each connection handed over once accepted, so a handshake can be stalled on purpose
            listening.listen(_backlog())
            listening.setblocking(False)
            self.tls_listener = listening
            self.tls_accepting = asyncio.ensure_future(self._accept_tls(listening))
        self.address, self.port = listening.getsockname()[:2]

    async def _accept_tls(self, listening: socket.socket) -> None:
        """Accept until the listener closes; each connection's handshake in a task of its own."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listening)
            except (OSError, asyncio.CancelledError):
                return  # the listener closed (stop_accepting, stop)
            task = asyncio.ensure_future(self._handshake(sock))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    async def _handshake(self, sock: socket.socket) -> None:
        """The TLS handshake (bounded by the head timeout), then HTTP as on a plain connection;
        or, stalled on purpose (``/stall-handshakes``), never an answer to the ClientHello."""
        loop = asyncio.get_running_loop()
        if self._take_stall():
            self.stats.tls_stalled += 1
            await loop.connect_accepted_socket(lambda: SlowHTTPConnection(self, stalled=True), sock)
            return
        try:
            await loop.connect_accepted_socket(lambda: SlowHTTPConnection(self), sock, ssl=self.tls,
                                               ssl_handshake_timeout=self.header_timeout or HEADER_TIMEOUT_S)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError):
            self.stats.tls_failures += 1  # a client that gave up, spoke no TLS, or trusts another CA
            sock.close()

    def _close_listener(self) -> None:
        """Close the listening socket, once (stop_accepting, stop, and with --workers another worker's word)."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.tls_listener is not None:
            self.tls_accepting.cancel()
            self.tls_listener.close()
            self.tls_listener = None

    def set_hold(self, query: dict) -> tuple[bytes, bytes, bytes]:
        """``/hold?until=N&most=S[&then=D]``: hold the next answers until N requests are in
        flight at once (1 to 100000), for at most S seconds (0 to 600); once reached, answer
        them, and the requests that come before S is over, D seconds after they came (0 to
        3600; the delay without it). Returns the response."""
        try:
            until, most = int(query["until"][0]), float(query["most"][0])
            then = float(query["then"][0]) if "then" in query else None
            if not 1 <= until <= 100_000 or not 0 <= most <= 600 or not (then is None or 0 <= then <= MAX_DELAY_S):
                raise ValueError
        except (KeyError, ValueError):
            return (b"400 Bad Request", b"hold: give until=N (1..100000), most=S (0..600) and maybe then=S\n",
                    b"text/plain")
        loop = asyncio.get_running_loop()
        if self.shared is None:
            self.stats.in_flight_at_miss = self.stats.flat_at_miss_ms = 0
        generation = self.shared.set_hold(until, most, then) if self.shared is not None else 0  # clears every row's
        self.hold_generation = generation
        now = loop.time()
        self.hold = Hold(until, now + most, then, most, generation=generation, last_join=now)
        loop.call_at(self.hold.deadline, self._hold_deadline, self.hold)
        return b"200 OK", json.dumps({"holding_until": until}).encode(), b"application/json"

    def current_hold(self) -> Hold | None:
        """The barrier the next request meets: this process's; with ``--workers``, a barrier
        another worker set is adopted here first (and released if it was reached)."""
        if self.shared is not None:
            self._follow_shared()
        return self.hold

    def _follow_shared(self) -> None:
        """--workers: take in what another worker changed (a barrier set or reached, the listeners closed)."""
        control = self.shared.control
        if control[GENERATION] != self.hold_generation:
            self.hold_generation = control[GENERATION]
            left_s = (control[DEADLINE_NS] - time.monotonic_ns()) / 1e9
            self.hold = None  # a newer barrier replaces this process's, as a /hold sent to it would
            if left_s > 0:
                then_ns = control[THEN_NS]
                loop = asyncio.get_running_loop()
                self.hold = Hold(control[UNTIL], loop.time() + left_s,
                                 None if then_ns == NO_THEN else then_ns / 1e9, left_s,
                                 generation=self.hold_generation, owner=False)
                loop.call_at(self.hold.deadline, self._hold_deadline, self.hold)
        hold = self.hold
        if hold is not None and not hold.reached and hold.generation == control[GENERATION] \
                and control[REACHED]:
            self._release_hold(hold)
        if not control[ACCEPTING] and (self.listener is not None or self.tls_listener is not None):
            self._close_listener()

    def _doorbell(self) -> None:
        self.shared.answer_doorbell()
        self._follow_shared()

    def next_request_number(self) -> int:
        """This request's number, counting from 1 (``/stats`` and the like left out): what the
        every-N-th fault goes by; with ``--workers``, the whole server's (under the lock)."""
        if self.shared is not None and self.faults.fault:
            with self.shared.lock():
                self.shared.control[STARTED] += 1
                return self.shared.control[STARTED]
        self.requests_started += 1
        return self.requests_started

    def _take_stall(self) -> bool:
        """Whether this TLS handshake is one of the next N to stall (``/stall-handshakes``)."""
        if self.shared is None:
            if self.stall_handshakes > 0:
                self.stall_handshakes -= 1
                return True
            return False
        with self.shared.lock():
            if self.shared.control[STALL] > 0:
                self.shared.control[STALL] -= 1
                return True
        return False

    def set_stall(self, query: dict) -> tuple[bytes, bytes, bytes]:
        """``/stall-handshakes?next=N``: the next N connections' TLS handshakes are never
        answered (0 to 1000; over plain HTTP, 400). Returns the response."""
        try:
            count = int(query["next"][0])
            if not 0 <= count <= 1000:
                raise ValueError
        except (KeyError, ValueError):
            return b"400 Bad Request", b"stall-handshakes: give next=N (0..1000)\n", b"text/plain"
        if self.tls is None:
            return b"400 Bad Request", b"stall-handshakes: this server speaks no TLS (--tls)\n", b"text/plain"
        if self.shared is not None:
            self.shared.control[STALL] = count
        else:
            self.stall_handshakes = count
        return b"200 OK", json.dumps({"stalling": count}).encode(), b"application/json"

    def check_hold(self) -> None:
        """Release every held answer once enough requests are in flight at once."""
        hold = self.hold
        if hold is None or hold.reached:
            return
        if self.shared is None:
            if self.stats.active_requests < hold.until:
                return
        elif not self.shared.reach_hold(hold.generation, hold.until):  # the whole server's count, under the lock
            return
        self.stats.holds_reached += 1
        self._release_hold(hold)

    def _release_hold(self, hold: Hold) -> None:
        hold.reached = True  # it stays until its deadline: the rest of the burst gets ``then``
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn, request, delay in hold.waiting:
            if conn.timer is not None and not conn.closed:  # still waiting (not hung up)
                conn.timer.cancel()
                conn.timer = loop.call_at(now + (hold.then if hold.then is not None else delay), conn._delay_over,
                                          request)
        hold.waiting.clear()

    def _hold_deadline(self, hold: Hold) -> None:
        if self.hold is hold:
            self.hold = None
            reached = hold.reached or (self.shared is not None and self.shared.control[GENERATION]
                                       == hold.generation and self.shared.control[REACHED])
            if not reached and hold.owner:
                self.stats.holds_missed += 1
                self.stats.in_flight_at_miss = self.stats.total("active_requests")
                if self.shared is None:  # the other workers' joins are theirs: unknown, so never read as flat
                    self.stats.flat_at_miss_ms = round((hold.deadline - hold.last_join) * 1000)
            if not reached and hold.then is not None:  # the burst goes as after a barrier reached, for a span more
                self._release_hold(hold)
                hold.deadline += hold.span
                self.hold = hold
                asyncio.get_running_loop().call_at(hold.deadline, self._hold_deadline, hold)
            # else the held ones are answered by their own fallback timers, after their delay

    def stop_accepting(self) -> None:
        """Close the listener: new connections are refused, open ones keep working."""
        self.stats.accepting = False
        self._close_listener()
        if self.shared is not None:
            self.shared.ring()  # the other workers close theirs
        self.log(f"stopped accepting after {self.stats.total('requests_served')} requests answered")

    def stop(self) -> None:
        """Close the listener and every connection; idempotent."""
        self._close_listener()
        self.connecting_deadlines.close()
        if self.head_deadlines is not None:
            self.head_deadlines.close()
        for handshake in list(self.handshakes):
            handshake.cancel()
        for conn in list(self.connections):
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
            if conn.transport is not None:
                conn.transport.abort()
        self.stopped.set()

    async def track(self) -> None:
        """Log the sockets on our port every interval, as the seed's netstat loop did (with
        ``--workers``, worker 0 logs its own and its children's: the whole server's)."""
        me = None  # psutil is imported at the first log: most servers live less than an interval
        while not self.stopped.is_set():
            try:
                await asyncio.wait_for(self.stopped.wait(), timeout=self.track_interval)
                return
            except asyncio.TimeoutError:
                pass
            if me is None:
                import psutil

                me = psutil.Process()
            # psutil scans our fds: seconds at 10k sockets, so off the event loop.
            states = await asyncio.to_thread(_own_socket_states, me, self.port, self.shared is not None)
            summary = " ".join(f"{k}={v}" for k, v in sorted(states.items())) or "none"
            self.log(
                f"sockets on port {self.port}: {summary}; active requests={self.stats.total('active_requests')} "
                f"served={self.stats.total('requests_served')} hung up early={self.stats.total('hung_up_early')}"
            )


def _own_socket_states(process, port: int, children: bool = False) -> dict[str, int]:
    """{TCP state: sockets} of ``process`` (``children``: and of its children, the other workers) on ``port``."""
    import psutil

    counts: dict[str, int] = {}
    for each in [process, *process.children()] if children else [process]:
        try:
            connections = each.net_connections(kind="tcp")
        except psutil.NoSuchProcess:  # a worker ending (the server stopping)
            continue
        for conn in connections:
            if conn.laddr and conn.laddr.port == port and conn.status != "LISTEN":
                counts[conn.status] = counts.get(conn.status, 0) + 1
    return counts


def bind_listener(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound (not yet listening) to the first address ``host`` resolves to;
    ``reuse_port``: one of several on the port (SO_REUSEPORT, ``--workers``). Raises OSError
    or socket.gaierror as bind and getaddrinfo do."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listening.bind(address)
    except BaseException:
        listening.close()
        raise
    return listening


def _backlog() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(128, int(f.read()))
    except (OSError, ValueError):
        return 4096
