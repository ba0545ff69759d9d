"""The TCP sockets one process holds, to any remote address: what a socket-leak
check of a test (or a watch of a running process) compares.

On Linux, this process's own sockets are read through its descriptors: each
one's ends and its kernel state (tcp_info), microseconds a socket. Another
process's: one sock_diag dump of the held states (ESTABLISHED, CLOSE_WAIT,
SYN_SENT) for each address family, matched by inode against its
``/proc/PID/fd`` links; no dump for a family with no TCP socket on the machine
(``netlink.in_use``), none at all for processes with no socket open. Cost: a
dump walks the kernel's whole table, about 1 ms a family with 2^18 buckets
(``python -m harness bench``), whatever the sockets. Elsewhere: psutil.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from typing import NamedTuple

import psutil

from . import netlink
from .states import HELD_STATES, SYN_SENT

HELD = (*HELD_STATES, SYN_SENT)
_STATE_NUMBER = {name: number for number, name in netlink.STATES.items()}
_ID = struct.Struct(">4xHH16s16s")  # from the diag message's start: sport, dport, src, dst (big-endian ports)
_INODE = struct.Struct("=I")
_INODE_AT = 68  # idiag_inode in struct inet_diag_msg


class OwnedSocket(NamedTuple):
    """One TCP socket a process holds: its two ends and its state."""

    local: str  # "ip:port"
    remote: str
    state: str

    @property
    def local_port(self) -> int:
        return int(self.local.rsplit(":", 1)[1])

    @property
    def remote_host(self) -> str:
        return self.remote.rsplit(":", 1)[0].strip("[]")

    @property
    def remote_port(self) -> int:
        return int(self.remote.rsplit(":", 1)[1])


def _endpoint(family: int, packed: bytes, port: int) -> str:
    if family == socket.AF_INET:
        return f"{socket.inet_ntop(family, packed[:4])}:{port}"
    address = ipaddress.IPv6Address(packed)
    if address.ipv4_mapped is not None:
        return f"{address.ipv4_mapped}:{port}"
    return f"[{address}]:{port}"


def _socket_descriptors(pid: int | str) -> dict[int, int]:
    """{descriptor: socket inode} of the sockets among ``pid``'s open files ("self":
    this process's); raises OSError if unreadable. A readlink a descriptor (~1 µs)."""
    base = f"/proc/{pid}/fd"
    found = {}
    for fd in os.listdir(base):
        try:
            link = os.readlink(f"{base}/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            found[int(fd)] = int(link[8:-1])
    return found


def _dumped(pids: tuple[int, ...], states: tuple[str, ...], info: bool = False, inodes: set[int] | None = None):
    """The sock_diag messages of the sockets ``pids`` hold in ``states``: yields (family,
    buffer, offset, end). One dump per address family, whatever the number of processes
    (each dump walks the kernel's whole table); a process after the first that ended
    meanwhile is skipped. With ``info``, each message carries tcp_info. ``inodes``:
    the processes' socket inodes when already read."""
    if inodes is None:
        inodes = set(_socket_descriptors(pids[0]).values())
        for pid in pids[1:]:
            try:
                inodes |= set(_socket_descriptors(pid).values())
            except OSError:
                continue
    if not inodes:  # no socket of any kind open: nothing to dump
        return
    mask = sum(1 << _STATE_NUMBER[name] for name in states)
    for family in (socket.AF_INET, socket.AF_INET6):
        if not netlink.in_use(family):  # no socket of that family on the machine (IPv6, often): no dump
            continue
        for data, start, end in netlink.dump_all(family, mask, info=info):
            if _INODE.unpack_from(data, start + _INODE_AT)[0] in inodes:
                yield family, data, start, end


def _netlink(pids: tuple[int, ...], inodes: set[int] | None = None) -> tuple[list[OwnedSocket], set[int]]:
    owned, listening = [], set()
    for family, data, start, _ in _dumped(pids, (*HELD, "LISTEN"), inodes=inodes):
        state = netlink.STATES.get(data[start + 1], str(data[start + 1]))
        sport, dport, src, dst = _ID.unpack_from(data, start)
        if state == "LISTEN":
            listening.add(sport)
        else:
            owned.append(OwnedSocket(_endpoint(family, src, sport), _endpoint(family, dst, dport), state))
    return owned, listening


def received_bytes(pid: int | None = None) -> dict[str, int] | None:
    """{local address: bytes received} of each held TCP socket of ``pid`` (this process
    by default), from the kernel's tcp_info; None where sock_diag does not answer
    (psutil reads no tcp_info). About twice a plain dump."""
    if not netlink.available():
        return None
    out: dict[str, int] = {}
    for family, data, start, end in _dumped((os.getpid() if pid is None else pid,), HELD, info=True):
        sport, _, src, _ = _ID.unpack_from(data, start)
        out[_endpoint(family, src, sport)] = netlink.received(data, start, end)
    return out


_LISTEN = _STATE_NUMBER["LISTEN"]
_HELD_NUMBERS = {_STATE_NUMBER[name]: name for name in HELD}


def _address(family: int, address: tuple) -> str:
    host, port = address[0], address[1]
    if family == socket.AF_INET6:
        host = host.split("%", 1)[0]  # a scope (fe80::1%eth0): the kernel's table has none
        mapped = ipaddress.IPv6Address(host).ipv4_mapped
        return f"{mapped}:{port}" if mapped is not None else f"[{host}]:{port}"
    return f"{host}:{port}"


# Above this many socket descriptors one dump is cheaper than reading each socket:
# ~8 µs a socket read so against a dump's ~2.5 ms floor plus ~3 µs a socket (this
# 2-core machine, 7 reads each: 300 sockets 2.4 vs 3.2 ms, 600 sockets 4.8 vs 4.3 ms).
# Where dumps cost less (0.6 ms on another machine) the crossing is lower; 300 keeps
# the descriptors' read within ~1.5 ms of the dump there and well ahead where tests
# hold a few sockets.
OWN_READ_AT_MOST = 300


def _own(descriptors: list[int]) -> tuple[list[OwnedSocket], set[int]] | None:
    """What this process holds, read through its own descriptors: each TCP socket's
    two ends and its state (tcp_info's first byte, the kernel's own), a few
    syscalls a socket (~8 µs) and no dump (a dump walks the kernel's whole table:
    ~1 ms a family). ``descriptors``: its socket descriptors. None, to dump
    instead, if a held socket's remote end cannot be read so (one still connecting
    has no peer yet)."""
    owned, listening = [], set()
    for descriptor in descriptors:
        try:
            copy = os.dup(descriptor)  # a copy: closing it never closes the process's own
        except OSError:  # closed meanwhile
            continue
        try:
            sock = socket.socket(fileno=copy)  # family and type read from the socket itself
        except OSError:
            os.close(copy)
            continue
        with sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                continue
            state = None
            try:
                state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
                if state == _LISTEN:
                    listening.add(sock.getsockname()[1])
                elif state in _HELD_NUMBERS:
                    owned.append(OwnedSocket(_address(sock.family, sock.getsockname()),
                                             _address(sock.family, sock.getpeername()), _HELD_NUMBERS[state]))
            except OSError:
                if state == _STATE_NUMBER[SYN_SENT]:
                    return None
                continue  # not TCP after all (SCTP, MPTCP's fallbacks), or closed meanwhile
    return owned, listening


def _psutil(pid: int) -> tuple[list[OwnedSocket], set[int]]:
    def text(address) -> str:
        return f"[{address.ip}]:{address.port}" if ":" in address.ip else f"{address.ip}:{address.port}"

    conns = psutil.Process(pid).net_connections(kind="tcp")
    return ([OwnedSocket(text(c.laddr), text(c.raddr), c.status) for c in conns if c.raddr and c.status in HELD],
            {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN})


def sockets_of(pid: int | None = None, others: tuple[int, ...] = ()) -> tuple[list[OwnedSocket], set[int]]:
    """(every TCP socket ``pid`` holds, and ``others`` (its children, say) with it:
    ESTABLISHED, CLOSE_WAIT, SYN_SENT, to any remote address; the ports they listen
    on). Raises ProcessLookupError for a ``pid`` that does not exist and
    PermissionError for one this user may not inspect; one of ``others`` that ended
    meanwhile is left out. This process alone, holding at most ``OWN_READ_AT_MOST``
    sockets: through its descriptors (``_own``); else netlink: one dump per address
    family for all of them."""
    pid = os.getpid() if pid is None else pid
    if not psutil.pid_exists(pid):
        raise ProcessLookupError(f"no process {pid}")
    try:
        if pid == os.getpid() and not others and hasattr(socket, "TCP_INFO") and sys.platform.startswith("linux"):
            descriptors = _socket_descriptors("self")
            mine = _own(list(descriptors)) if len(descriptors) <= OWN_READ_AT_MOST else None
            if mine is not None:
                return mine
            if netlink.available():
                return _netlink((pid,), set(descriptors.values()))
        if netlink.available():
            return _netlink((pid, *others))
        owned, listening = _psutil(pid)
        for other in others:
            try:
                more, ports = _psutil(other)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            owned, listening = owned + more, listening | ports
        return owned, listening
    except (FileNotFoundError, psutil.NoSuchProcess):
        raise ProcessLookupError(f"no process {pid}") from None
    except psutil.AccessDenied:
        raise PermissionError(f"process {pid}: not allowed to read its sockets") from None


def held_by(pid: int | None = None, servers: set[int] = frozenset()) -> list[OwnedSocket]:
    """The client sockets ``pid`` (this process by default) holds (``sockets_of``),
    leaving out what its listeners accepted: a socket whose local port it listens on
    now, or is in ``servers`` (ports it listened on earlier), is a server's side."""
    owned, listening = sockets_of(pid)
    return sorted(s for s in owned if s.local_port not in listening and s.local_port not in servers)
