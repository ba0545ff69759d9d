"""HTTP/2 on a connection that chose it (TLS ALPN ``h2``, or h2c with prior knowledge), with
the ``h2`` library: many requests in flight on one socket, each stream answered after the
delay like an HTTP/1.1 request (``RequestLifecycle``), counted in the same ``/stats``.

Faults over HTTP/2: a fault that answers wrong (``reset``, ``truncate``, ...) resets its
stream (RST_STREAM); ``hang`` never answers it. Cost: ~50 us a request in h2's state
machine, a few times h11's.
"""
from __future__ import annotations

import h11
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import ProtocolError

from .protocol import RequestLifecycle, SlowHTTPConnection

class Stream(RequestLifecycle):
    """One request on an HTTP/2 connection: answered, reset or abandoned, never the socket itself."""

    def __init__(self, session: H2Session, stream_id: int, request: h11.Request) -> None:
        self.session, self.stream_id, self.request = session, stream_id, request
        self.server = session.connection.server
        self.peer = f"{session.connection.peer} stream {stream_id}"
        self.arrived = self.server.batch_time()
        self.timer = None
        self.pending_fault = None
        self.request_started = 0.0
        self.closed = False

    def _respond(self, request: h11.Request, status: bytes, body: bytes, ctype: bytes) -> None:
        self.session.answer(self.stream_id, status, body, ctype)

    def _abandon(self) -> None:
        self.session.streams.pop(self.stream_id, None)

    def _cancel_idle_close(self) -> None:
        pass  # the connection's idle close (--idle-close) is HTTP/1.1's

    # a fault's actions (faults.Struck): over HTTP/2 a wrong answer resets the stream
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.session.reset(self.stream_id)

    reset = close_uncleanly = close


class H2Session:
    """The HTTP/2 side of one connection: its streams, and what it writes."""

    def __init__(self, connection: SlowHTTPConnection) -> None:
        self.connection = connection
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.h2.initiate_connection()
        self.streams: dict[int, Stream] = {}
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.connection.transport is not None and not self.connection.closed:
            self.connection.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self.connection.server.stats.bad_requests += 1
            self.connection.server.log(f"client {self.connection.peer}: HTTP/2 protocol error, closing: "
                                       f"{type(exc).__name__}: {exc}")
            self.flush()  # h2's GOAWAY, then the close
            if self.connection.transport is not None:
                self.connection.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                headers = dict(event.headers)
                path = headers.get(b":path", b"/")
                authority = headers.get(b":authority", b"x")
                request = h11.Request(method=headers.get(b":method", b"GET"), target=path,
                                      headers=[(b"host", authority)])
                self.streams[event.stream_id] = Stream(self, event.stream_id, request)
            elif isinstance(event, StreamEnded):  # the request is whole (h2 says so after its headers or body)
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream._request_complete()
            elif isinstance(event, DataReceived):  # a request body: read and ignored
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamReset):  # the client gave up on this request alone
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None and stream.timer is not None:
                    stream._hung_up()
            elif isinstance(event, ConnectionTerminated):  # GOAWAY: the client is done with the connection
                if self.connection.transport is not None:
                    self.connection.transport.close()
        self.flush()

    def answer(self, stream_id: int, status: bytes, body: bytes, ctype: bytes) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None or self.connection.closed:
            return
        self.h2.send_headers(stream_id, [(b":status", status.split(b" ", 1)[0]), (b"content-type", ctype),
                                         (b"content-length", str(len(body)).encode())],
                             end_stream=stream.request.method == b"HEAD")
        if stream.request.method != b"HEAD":
            self.h2.send_data(stream_id, body, end_stream=True)
        self.flush()

    def reset(self, stream_id: int) -> None:
        if self.streams.pop(stream_id, None) is not None and not self.connection.closed:
            self.h2.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
            self.flush()

    def connection_lost(self) -> None:
        """The socket closed: every request still waiting was given up by its client."""
        for stream in list(self.streams.values()):
            if stream.timer is not None:
                stream._hung_up()
        self.streams.clear()

