"""The netlink backend (Linux): TCP sockets to one server, from the kernel's
sock_diag netlink interface (what ``ss`` uses), filtered by address and port in
the kernel.

``tcp_sockets(address, port)`` returns the sockets whose remote end is the
server (and, if asked, those whose local end is), in any state (TIME_WAIT
included), without mapping sockets to processes. Cost: see ``python -m harness
bench`` (``sampler_ms``).
"""
from __future__ import annotations

import errno
import functools
import os
import socket
import struct
import sys
from collections.abc import Sequence

from ..tcp_info import BYTES_RECEIVED, BYTES_RECEIVED_AT, LAST_DATA_RECV, LAST_DATA_RECV_AT
from .backends import Backend, BackendUnavailable, ClientSide, ServerSide, SocketInfo, Target, register

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_INFO = 2  # the attribute carrying struct tcp_info; asked for with ext bit 1 << (2 - 1)
BC_JMP, BC_S_COND, BC_D_COND = 1, 7, 8
# Every state in STATES: not TCP_BOUND_INACTIVE (13, Linux 6.5 on), whose sockets are bound and not connected, so
# never match a filter on the remote end, and asking for which adds a walk of the kernel's whole bind table to every
# dump: without it a dump takes 0.78x the time at 3,000 sockets, 0.74x at 9,000 (7 rounds alternating, same run).
# ``ss`` (iproute2 6.1) does not ask for it either. (The remote port put in the socket id as well, which the kernel
# compares before the bytecode, measured no faster: 0.79x, 0.75x.)
DUMPED_STATES = sum(1 << number for number in range(1, 13))
RECV_BYTES = 1 << 20  # one recv takes many messages; a dump of 20k sockets needs a couple

# TCP states as the kernel numbers them, named as psutil names them
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
          7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}

_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQ = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states; then the socket id (all zero: no match by id)
_SOCKID_ZERO = bytes(48)
_RTA = struct.Struct("=HH")
_OP = struct.Struct("=BBH")  # code, yes, no
_HEADER = struct.Struct("=IH2xI")  # nlmsghdr's len, type, seq
# from inet_diag_msg's start: state, sport, dport (big-endian), idiag_rqueue at 56 (native order, read here
# big-endian: only whether it is zero is used on the hot path, and a byte swap keeps zero zero)
_DIAG = struct.Struct(">xB2xHH48xI")
_HOSTCOND = struct.Struct("=BBxxi")  # family, prefix length, port (-1: any); the address follows
_DIAG_MSG_SIZE = 72  # struct inet_diag_msg; its attributes follow it
_BIG_U32, _NATIVE_U32 = struct.Struct(">I"), struct.Struct("=I")
_FIRST_LENGTH = _NATIVE_U32  # a datagram's first message's length


class SockDiagUnavailable(BackendUnavailable):
    """This machine has no sock_diag (not Linux, or netlink is not allowed)."""


def _hostcond(code: int, family: int, packed: bytes, port: int, yes: int, no: int) -> bytes:
    """One S_COND/D_COND op: address (full prefix) and port must both match."""
    return _OP.pack(code, yes, no) + _HOSTCOND.pack(family, len(packed) * 8, port) + packed


def _filter(family: int, packed: bytes, port: int, server_side: bool) -> bytes:
    """Bytecode: remote (address, port) is the server's; with ``server_side``, or local
    is. Offsets are bytes from each op; reaching the end accepts, the end + 4
    rejects. The kernel's audit walks the ``yes`` jumps, so every ``no`` target
    must lie on that walk: hence the JMP (always taken as ``no``), as ``ss`` does."""
    size = _OP.size + _HOSTCOND.size + len(packed)
    if not server_side:
        return _hostcond(BC_D_COND, family, packed, port, size, size + 4)
    return (_hostcond(BC_D_COND, family, packed, port, size, size + 4)     # remote matches ? JMP : local test
            + _OP.pack(BC_JMP, 4, size + 4)                                # jump to the end: accept
            + _hostcond(BC_S_COND, family, packed, port, size, size + 4))  # local matches ? accept : reject


def _request(family: int, packed: bytes, port: int, server_side: bool, seq: int, info: bool = False) -> bytes:
    bytecode = _filter(family, packed, port, server_side)
    attr = _RTA.pack(_RTA.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    ext = 1 << (INET_DIAG_INFO - 1) if info else 0
    body = _REQ.pack(family, socket.IPPROTO_TCP, ext, 0, DUMPED_STATES) + _SOCKID_ZERO + attr
    return _NLMSG.pack(_NLMSG.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True where sock_diag answers (Linux with netlink allowed). Probed once a process:
    the answer does not change, and a probe is a dump of its own."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        tcp_sockets("127.0.0.1", 1)
    except OSError:
        return False
    return True


def tcp_sockets(address: str, port: int, server_side: bool = False
                ) -> tuple[list[tuple[int, str, int]], list[tuple[str, int]]]:
    """The sockets whose remote end is ``address:port`` (a server's clients) as
    (local port, state, unread bytes) triples (unread: the receive queue, bytes the
    client has not read yet); and, with ``server_side``, those whose local end
    is, as (state, remote port) pairs. Any state, TIME_WAIT included. Address and
    port are matched in the kernel; the dump walks the kernel's whole TCP table
    once (~0.6-1.1 us a matching socket in the kernel at 10,000, ~0.2 us in Python).

    An IPv4 address is matched on AF_INET sockets only: a dual-stack AF_INET6
    socket connected to ``::ffff:a.b.c.d`` is not seen (psutil sees it). Raises
    SockDiagUnavailable where there is no sock_diag.
    """
    if not hasattr(socket, "AF_NETLINK"):
        raise SockDiagUnavailable(errno.EAFNOSUPPORT, "sock_diag needs Linux netlink")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    sock = _open()
    try:
        sock.send(_request(family, packed, port, server_side, 1))
        return _read_dump(sock, 1, port)
    finally:
        sock.close()


def bare_dump(address: str, port: int) -> int:
    """The kernel's part of a sample alone, its floor: the same filtered dump as
    ``tcp_sockets``, read to its end without parsing a socket. Returns the messages
    read (sockets matched). For the bench."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = _open()
    try:
        sock.send(_request(family, socket.inet_pton(family, address), port, False, 4))
        return _count_dump(sock, 4)
    finally:
        sock.close()


def _open() -> socket.socket:
    try:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as exc:
        raise SockDiagUnavailable(getattr(exc, "errno", None) or errno.EAFNOSUPPORT,
                                  f"sock_diag netlink socket: {exc}") from None


def _chunks(sock: socket.socket):
    """The dump's datagrams, each of many messages, until the kernel stops sending."""
    while True:
        data = sock.recv(RECV_BYTES)
        if not data:
            raise SockDiagUnavailable(errno.EIO, "sock_diag closed the dump early")
        yield data


def _ends(data: bytes, offset: int, length: int, kind: int) -> bool:
    """For a message of the dump that carries no socket: True at its end (NLMSG_DONE);
    raises SockDiagUnavailable on an error or a bad length; False for any other."""
    if length < _NLMSG.size:
        raise SockDiagUnavailable(errno.EIO, f"sock_diag: bad message length {length}")
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, offset + _NLMSG.size)[0]
        raise SockDiagUnavailable(code, f"sock_diag: {os.strerror(code)}")
    return kind == NLMSG_DONE


def _messages(sock: socket.socket, seq: int):
    """Every sock_diag message of dump ``seq`` on ``sock``: yields (buffer, offset of its
    inet_diag_msg, the message's end). Raises SockDiagUnavailable on an error or a cut dump."""
    header_size = _NLMSG.size
    unpack_header = _HEADER.unpack_from
    for data in _chunks(sock):
        offset, end = 0, len(data)
        while offset + header_size <= end:
            length, kind, msg_seq = unpack_header(data, offset)
            if kind == SOCK_DIAG_BY_FAMILY and msg_seq == seq and length >= header_size:
                yield data, offset + header_size, offset + length
            elif (length < header_size or msg_seq == seq) and _ends(data, offset, length, kind):
                return
            offset += (length + 3) & ~3


def _count_dump(sock: socket.socket, seq: int) -> int:
    """The messages of dump ``seq`` read to its end, no socket parsed: a sample's floor."""
    header_size, unpack_header, count = _NLMSG.size, _HEADER.unpack_from, 0
    for data in _chunks(sock):
        offset, end = 0, len(data)
        while offset + header_size <= end:
            length, kind, msg_seq = unpack_header(data, offset)
            if kind == SOCK_DIAG_BY_FAMILY and msg_seq == seq and length >= header_size:
                count += 1
            elif (length < header_size or msg_seq == seq) and _ends(data, offset, length, kind):
                return count
            offset += (length + 3) & ~3
    raise AssertionError("unreachable: _chunks ends only by raising")


@functools.lru_cache(maxsize=8)
def _uniform(length: int) -> tuple[struct.Struct, struct.Struct]:
    """Two views of a run of messages ``length`` bytes each: headers (length, type, seq), native order; and
    the sockets' state, ports and receive queue, read as _DIAG reads them."""
    return (struct.Struct(f"=IH2xI{length - _HEADER.size}x"),
            struct.Struct(f">{_NLMSG.size}x{_DIAG.format.lstrip('>')}{length - _NLMSG.size - _DIAG.size}x"))


def _read_uniform(data: bytes, seq: int, port: int, add_client, add_server) -> bool:
    """A datagram of socket messages all of one length, as a dump without tcp_info sends them (~250 to a
    datagram, all ESTABLISHED or all TIME_WAIT alike): read in two C loops (``iter_unpack``), not message by
    message (0.69x the time, 10,000 sockets). False, part read, at the first message that is not one of them:
    the caller reads it again its own way."""
    length = _FIRST_LENGTH.unpack_from(data)[0] if len(data) >= _FIRST_LENGTH.size else 0
    if length < _NLMSG.size + _DIAG.size or length % 4 or len(data) % length:
        return False
    headers, sockets = _uniform(length)
    states = STATES
    for (message_length, kind, msg_seq), (state, sport, dport, unread) in zip(headers.iter_unpack(data),
                                                                               sockets.iter_unpack(data)):
        if message_length != length or kind != SOCK_DIAG_BY_FAMILY or msg_seq != seq:
            return False
        name = states.get(state) or str(state)
        if dport == port:
            add_client((sport, name, unread and _NATIVE_U32.unpack(_BIG_U32.pack(unread))[0]))
        else:
            add_server((name, dport))
    return True


def _read_dump(sock: socket.socket, seq: int, port: int, info: dict | None = None
               ) -> tuple[list[tuple[int, str, int]], list[tuple[str, int]]]:
    """The dump's client side as (local port, state, bytes received not yet read by
    the client) and server side as (state, remote port); with ``info`` (a dict, the request asked for
    tcp_info), also {local port: (state, bytes received, ms since data)} of the client side."""
    # the hot loop: two unpacks a message (its header, its socket), locals only, no generator between
    header_size, unpack_header, unpack_msg, states = _NLMSG.size, _HEADER.unpack_from, _DIAG.unpack_from, STATES
    clients: list[tuple[int, str, int]] = []
    servers: list[tuple[str, int]] = []
    add_client, add_server = clients.append, servers.append
    for data in _chunks(sock):
        if info is None:
            had = len(clients), len(servers)
            if _read_uniform(data, seq, port, add_client, add_server):
                continue
            del clients[had[0]:], servers[had[1]:]  # read again, message by message
        offset, end = 0, len(data)
        while offset + header_size <= end:
            length, kind, msg_seq = unpack_header(data, offset)
            if kind == SOCK_DIAG_BY_FAMILY and msg_seq == seq and length >= header_size:
                start = offset + header_size
                state, sport, dport, unread = unpack_msg(data, start)
                name = states.get(state) or str(state)
                if dport == port:
                    add_client((sport, name, unread and _NATIVE_U32.unpack(_BIG_U32.pack(unread))[0]))
                    if info is not None:
                        info[sport] = (name, *_read_info(data, start + _DIAG_MSG_SIZE, offset + length))
                else:
                    add_server((name, dport))
            elif (length < header_size or msg_seq == seq) and _ends(data, offset, length, kind):
                return clients, servers
            offset += (length + 3) & ~3
    raise AssertionError("unreachable: _chunks ends only by raising")


def tcp_info(address: str, port: int) -> dict[int, tuple[str, int, int]]:
    """{local port: (state, bytes received, ms since data was last received)} of every
    socket whose remote end is ``address:port``, from the kernel's tcp_info, in one
    filtered dump (what ``ss -ti`` prints as bytes_received and lastrcv). Costs
    about twice a plain dump: ~230 more bytes a socket to copy and read."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    out: dict[int, tuple[str, int, int]] = {}
    sock = _open()
    try:
        sock.send(_request(family, packed, port, False, 2, info=True))
        _read_dump(sock, 2, port, info=out)
    finally:
        sock.close()
    return out


_SOCKSTAT = {socket.AF_INET: ("/proc/net/sockstat", b"TCP: inuse "),
             socket.AF_INET6: ("/proc/net/sockstat6", b"TCP6: inuse ")}


def in_use(family: int) -> bool:
    """Whether this network namespace has any TCP socket of ``family`` in its tables
    (listening, connecting, connected or closing; TIME_WAIT not counted), from
    /proc/net/sockstat: ~10 us, where a dump walks the whole table (~1 ms with 2^18
    buckets). True where that file cannot be read or parsed: then dump."""
    path, prefix = _SOCKSTAT[family]
    try:
        with open(path, "rb") as stat:
            text = stat.read()
        at = text.index(prefix) + len(prefix)
        return int(text[at:text.index(b" ", at)]) > 0
    except (OSError, ValueError):
        return True


def dump_all(family: int, states: int, info: bool = False):
    """Every TCP socket of ``family`` in the ``states`` bitmask (1 << state number), with
    no filter by address: yields (buffer, offset of its inet_diag_msg, its end). With
    ``info`` each message carries tcp_info (``received``); a dump costs about twice."""
    ext = 1 << (INET_DIAG_INFO - 1) if info else 0
    body = _REQ.pack(family, socket.IPPROTO_TCP, ext, 0, states) + _SOCKID_ZERO
    request = _NLMSG.pack(_NLMSG.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 3, 0) + body
    sock = _open()
    try:
        sock.send(request)
        yield from _messages(sock, 3)
    finally:
        sock.close()


def received(data: bytes, start: int, end: int) -> int:
    """Bytes received by the socket of the message at ``start`` (a dump asked with
    ``info``); -1 without tcp_info."""
    return _read_info(data, start + _DIAG_MSG_SIZE, end)[0]


def _read_info(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(bytes received, ms since the last data) from the INET_DIAG_INFO attribute; (-1, -1) without it."""
    while start + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, start)
        if length < _RTA.size:
            break
        if kind == INET_DIAG_INFO and length - _RTA.size >= BYTES_RECEIVED_AT + 8:
            body = start + _RTA.size
            return (BYTES_RECEIVED.unpack_from(data, body + BYTES_RECEIVED_AT)[0],
                    LAST_DATA_RECV.unpack_from(data, body + LAST_DATA_RECV_AT)[0])
        start += (length + 3) & ~3
    return -1, -1


class NetlinkBackend(Backend):
    name = "netlink"
    summary = "Linux sock_diag, filtered by port in the kernel"
    reads_queues = True

    def available(self) -> bool:
        return available()

    def unavailable_reason(self) -> str:
        return "the netlink sampler needs Linux sock_diag, which does not answer here"

    def scan(self, targets: Sequence[Target]) -> list[tuple[ClientSide, ServerSide]]:
        # one filtered dump per target: each reads only that server's sockets
        return [tcp_sockets(t.ip, t.port, t.server_side) for t in targets]

    def info(self, target: Target) -> dict[int, SocketInfo]:
        return {port: SocketInfo(*row) for port, row in tcp_info(target.ip, target.port).items()}


register(NetlinkBackend())  # registered first: auto prefers it where it answers
