"""The slow server: ``python -m harness.server``.

The Python counterpart of the seed's slow server. Every request waits ``--delay``
seconds, then gets ``200`` with a short body, ``Content-Length`` and
``Connection: keep-alive``; the connection stays open for the next request
(HTTP/1.1, and HTTP/1.0 clients that ask for keep-alive).

Once listening it prints exactly one JSON line on stdout,
``{"host": ..., "port": ..., "pid": ...}``; everything else goes to stderr.

Per-request overrides in the query string (used by the experiments):

* ``delay=S``   wait S seconds instead of ``--delay``;
* ``fail=reset`` after the delay, reset the connection (RST) instead of answering;
* ``fault=reset-mid-response|truncate|hang`` misbehave as the ``--fault`` flag says.

Faults on purpose, for the whole server: ``--fault`` (every ``--fault-every``-th
request), ``--idle-close S``, ``--stop-accepting-after N`` (see ``--help``).

``GET /stats`` answers at once with the server's counters as JSON.

One asyncio event loop serves every connection; h11 parses requests. A pending
response is a timer, not a thread, so thousands of slow connections cost little.
The delay counts from when the loop woke up with the request's data, so a
request that waited behind thousands of others to be parsed is not answered late.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import json
import math
import os
import resource
import signal
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs, urlsplit

import h11

from .options import (
    OneLineParser,
    UsageError,
    argparse_type,
    non_negative_float,
    port,
    positive_float,
    positive_int,
)

BODY = b"ok\n"
MAX_BUFFERED_BYTES = 1 << 20  # stop reading from a client that sends this much unanswered


@dataclass
class ServerStats:
    """Counters served by ``GET /stats``. Connection counts include /stats callers."""

    open_connections: int = 0
    active_requests: int = 0
    peak_active_requests: int = 0  # the most requests ever waiting for their answer at once
    requests_served: int = 0
    hung_up_early: int = 0
    connections_accepted: int = 0
    stats_requests: int = 0
    resets_sent: int = 0
    truncated_sent: int = 0
    hanging: int = 0  # requests the server will never answer (fault hang)
    idle_closed: int = 0  # keep-alive connections the server closed for idling (--idle-close)
    accepting: bool = True


FAULTS = ("reset-mid-response", "truncate", "hang")
HANG_S = 10 ** 7  # "never": a timer this far out is cancelled when the client hangs up or the server stops


@dataclass(frozen=True)
class Faults:
    """Misbehaviour on purpose. ``fault`` hits every ``every``-th request (counting
    from 1, /stats left out); ``idle_close`` closes keep-alive connections idle
    that many seconds; ``stop_accepting_after`` closes the listener once that
    many requests were answered (connections already open keep working)."""

    fault: str | None = None
    every: int = 1
    idle_close: float | None = None
    stop_accepting_after: int | None = None


def _response_head(status: bytes, length: int, keep_alive: bool, content_type: bytes) -> bytes:
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n"
        b"Connection: " + connection + b"\r\n\r\n"
    )


OK_KEEP_ALIVE = _response_head(b"200 OK", len(BODY), True, b"text/plain") + BODY


def _wants_keep_alive(request: h11.Request) -> bool:
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


class SlowHTTPConnection(asyncio.Protocol):
    """One client connection: parse a request, answer after the delay, repeat."""

    def __init__(self, server: SlowServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.parser: h11.Connection | None = h11.Connection(h11.SERVER)
        self.request: h11.Request | None = None
        self.request_started = 0.0
        self.arrived = 0.0  # when the loop woke up with this connection's latest data (loop time)
        self.reading_paused = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    # asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        self.server.connections.add(self)
        self.server.stats.open_connections += 1
        self.server.stats.connections_accepted += 1

    def data_received(self, data: bytes) -> None:
        self.arrived = self.server.batch_time()
        if self.parser is None:  # the previous request was answered: a fresh parser, made only now
            self.parser = h11.Connection(h11.SERVER)
        self.parser.receive_data(data)
        self._advance()

    def eof_received(self) -> bool:
        if self.timer is not None:
            self._hung_up()
        return False  # let asyncio close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_idle_close()
        if self.timer is not None:
            self._hung_up()
        if not self.closed:
            self.closed = True
            self.server.connections.discard(self)
            self.server.stats.open_connections -= 1

    # request handling --------------------------------------------------
    def _advance(self) -> None:
        """Parse events until a whole request is in, unless one is pending."""
        while self.timer is None and not self.closed and self.parser is not None:
            try:
                event = self.parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._send_error(exc)
                return
            if event is h11.NEED_DATA:
                self._limit_buffering()
                return
            if isinstance(event, h11.Request):
                self.request = event
            elif isinstance(event, h11.EndOfMessage):
                self._request_complete()
            elif isinstance(event, h11.ConnectionClosed):
                return
            # h11.Data: a request body, read and ignored.

    def _limit_buffering(self) -> None:
        assert self.parser is not None
        buffered = len(self.parser.trailing_data[0])
        if buffered > MAX_BUFFERED_BYTES and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _request_complete(self) -> None:
        request = self.request
        assert request is not None
        target = urlsplit(request.target.decode("latin-1"))
        if target.path == "/stats":
            self.server.stats.stats_requests += 1
            body = json.dumps(asdict(self.server.stats)).encode()
            self._respond(request, b"200 OK", body, b"application/json")
            return
        query = parse_qs(target.query)
        delay = self.server.delay
        try:
            if "delay" in query:
                delay = float(query["delay"][0])
                if not math.isfinite(delay) or delay < 0:
                    raise ValueError
        except ValueError:
            self._respond(request, b"400 Bad Request", b"bad delay\n", b"text/plain")
            return
        fault = query.get("fault", [None])[0]
        if query.get("fail", [""])[0] == "reset":
            fault = "reset"
        if fault is not None and fault not in FAULTS + ("reset",):
            self._respond(request, b"400 Bad Request", f"unknown fault {fault}\n".encode(), b"text/plain")
            return
        self.server.requests_started += 1
        faults = self.server.faults
        if fault is None and faults.fault and self.server.requests_started % faults.every == 0:
            fault = faults.fault
        if fault == "hang":
            delay = HANG_S
            self.server.stats.hanging += 1
        reset = fault
        stats = self.server.stats
        stats.active_requests += 1
        stats.peak_active_requests = max(stats.peak_active_requests, stats.active_requests)
        self.request_started = time.monotonic()
        # from when the data arrived, not from when it was parsed: with thousands of requests
        # arriving at once, the last one parsed would otherwise wait its place in the queue on top
        loop = asyncio.get_running_loop()
        self.timer = loop.call_at(self.arrived + delay, self._delay_over, request, reset)
        self._cancel_idle_close()

    def _delay_over(self, request: h11.Request, fault: str | None) -> None:
        self.timer = None
        stats = self.server.stats
        stats.active_requests -= 1
        if fault in ("reset", "reset-mid-response"):
            stats.resets_sent += 1
            if fault == "reset-mid-response":  # the status line and part of a header, then RST
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")
            self._reset()
            return
        if fault == "truncate":  # promises 100 bytes, sends 3, and closes
            stats.truncated_sent += 1
            assert self.transport is not None
            self.transport.write(_response_head(b"200 OK", 100, False, b"text/plain") + BODY)
            self.transport.close()
            return
        stats.requests_served += 1
        self._respond(request, b"200 OK", BODY, b"text/plain")
        limit = self.server.faults.stop_accepting_after
        if limit is not None and stats.requests_served >= limit and stats.accepting:
            self.server.stop_accepting()

    def _respond(self, request: h11.Request, status: bytes, body: bytes, ctype: bytes) -> None:
        assert self.transport is not None and self.parser is not None
        keep_alive = _wants_keep_alive(request)
        if status == b"200 OK" and body is BODY and keep_alive and request.method != b"HEAD":
            response = OK_KEEP_ALIVE  # the common case, thousands at once: nothing to build
        else:
            head = _response_head(status, len(body), keep_alive, ctype)
            response = head if request.method == b"HEAD" else head + body
        # One write: headers and body leave together (no Nagle wait between them).
        self.transport.write(response)
        if not keep_alive:
            self.transport.close()
            return
        leftover, _ = self.parser.trailing_data
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
        assert self.transport is not None
        body = f"bad request: {exc}\n".encode()
        self.transport.write(_response_head(b"400 Bad Request", len(body), False, b"text/plain") + body)
        self.transport.close()

    def _reset(self) -> None:
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _hung_up(self) -> None:
        assert self.timer is not None
        if self.timer.when() - self.request_started > HANG_S / 2:
            self.server.stats.hanging -= 1
        self.timer.cancel()
        self.timer = None
        self.server.stats.active_requests -= 1
        self.server.stats.hung_up_early += 1
        waited = time.monotonic() - self.request_started
        self.server.log(f"client {self.peer} hung up {waited:.3f} s into its request; not answered")
        if self.transport is not None:
            self.transport.abort()


class SlowServer:
    """Owns the listener, the open connections and the counters."""

    def __init__(self, host: str, port: int, delay: float, track_interval: float, faults: Faults = Faults()) -> None:
        self.faults = faults
        self.requests_started = 0
        self.host = host
        self.port = port
        self.delay = delay
        self.track_interval = track_interval
        self.stats = ServerStats()
        self.connections: set[SlowHTTPConnection] = set()
        self.listener: asyncio.base_events.Server | None = None
        self.stopped = asyncio.Event()
        self._batch_time: float | None = None

    def batch_time(self) -> float:
        """The loop time when the loop began running the current batch of callbacks.

        asyncio runs, in one batch, the callbacks of every socket that select()
        found ready; a callback scheduled with call_soon runs in the next batch.
        So the first caller in a batch stamps it, and everyone after it in the
        same batch shares the stamp: roughly when their data arrived, however
        long the callbacks before them took. Costs ~1 us.
        """
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

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.listener = await loop.create_server(
            lambda: SlowHTTPConnection(self), self.host, self.port, backlog=_backlog(), reuse_address=True
        )
        sockname = self.listener.sockets[0].getsockname()
        self.port = sockname[1]

    def stop_accepting(self) -> None:
        """Close the listener: new connections are refused, open ones keep working."""
        self.stats.accepting = False
        if self.listener is not None:
            self.listener.close()
        self.log(f"stopped accepting after {self.stats.requests_served} requests answered")

    def stop(self) -> None:
        """Close the listener and every connection; idempotent."""
        if self.listener is not None:
            self.listener.close()
        for conn in list(self.connections):
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
            if conn.transport is not None:
                conn.transport.abort()
        self.stopped.set()

    async def track(self) -> None:
        """Log the sockets on our port every interval, as the seed's netstat loop did."""
        import psutil

        me = psutil.Process()
        while not self.stopped.is_set():
            try:
                await asyncio.wait_for(self.stopped.wait(), timeout=self.track_interval)
                return
            except asyncio.TimeoutError:
                pass
            # psutil scans our fds: seconds at 10k sockets, so off the event loop.
            states = await asyncio.to_thread(_own_socket_states, me, self.port)
            summary = " ".join(f"{k}={v}" for k, v in sorted(states.items())) or "none"
            self.log(
                f"sockets on port {self.port}: {summary}; active requests={self.stats.active_requests} "
                f"served={self.stats.requests_served} hung up early={self.stats.hung_up_early}"
            )


def _own_socket_states(process, port: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for conn in process.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status != "LISTEN":
            counts[conn.status] = counts.get(conn.status, 0) + 1
    return counts


def _backlog() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(128, int(f.read()))
    except (OSError, ValueError):
        return 4096


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m harness.server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=argparse_type(port), default=0,
                        help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--delay", type=argparse_type(non_negative_float), default=20.0,
                        help="seconds before each answer (default 20)")
    parser.add_argument("--track-interval", type=argparse_type(positive_float), default=5.0,
                        help="seconds between socket-count log lines (default 5)")
    faults = parser.add_argument_group("faults (on purpose)")
    faults.add_argument("--fault", choices=FAULTS,
                        help="reset-mid-response: part of the head, then RST; truncate: Content-Length 100, "
                             "3 bytes sent, then FIN; hang: never answer")
    faults.add_argument("--fault-every", type=argparse_type(positive_int), default=1, metavar="N",
                        help="the fault hits every N-th request (default 1: all)")
    faults.add_argument("--idle-close", type=argparse_type(positive_float), metavar="S",
                        help="close keep-alive connections idle for S seconds")
    faults.add_argument("--stop-accepting-after", type=argparse_type(positive_int), metavar="N",
                        help="close the listener once N requests were answered (open connections keep working)")
    return parser


async def serve(args: argparse.Namespace) -> int:
    faults = Faults(args.fault, args.fault_every, args.idle_close, args.stop_accepting_after)
    server = SlowServer(args.host, args.port, args.delay, args.track_interval, faults)
    try:
        await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"--port {args.port}: already in use on {args.host}") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise UsageError(f"--host {args.host}: not an address of this machine") from None
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    except socket.gaierror:
        raise UsageError(f"--host {args.host!r}: not a valid address") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    print(json.dumps({"host": args.host, "port": server.port, "pid": os.getpid()}), flush=True)
    server.log(f"listening on {args.host}:{server.port}, delay {args.delay} s"
               + (f", faults {faults}" if faults != Faults() else ""))
    tracker = asyncio.create_task(server.track())
    await server.stopped.wait()
    await tracker
    server.log(
        f"stopped: served={server.stats.requests_served} hung up early={server.stats.hung_up_early} "
        f"accepted={server.stats.connections_accepted}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        raise_open_files_limit()
        return asyncio.run(serve(args))
    except UsageError as exc:
        print(f"harness.server: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
