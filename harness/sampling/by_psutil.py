"""The psutil backend (portable): ``psutil.net_connections()``.

~12 ms a scan with 100 sockets on the machine and ~400 ms with 10k: it reads the
whole table and maps every socket to a process. One scan serves every target.
"""
from __future__ import annotations

from collections.abc import Sequence

import psutil

from .backends import Backend, ClientSide, ServerSide, Target, register


def psutil_rows() -> list[tuple[str, str, int, str, int]]:
    """(state, local ip, local port, remote ip, remote port) of every connected TCP socket."""
    return [(c.status, c.laddr.ip, c.laddr.port, c.raddr.ip, c.raddr.port)
            for c in psutil.net_connections(kind="tcp") if c.raddr]


class PsutilBackend(Backend):
    name = "psutil"
    summary = "portable, slower with many sockets on the machine"

    def available(self) -> bool:
        return True

    def scan(self, targets: Sequence[Target]) -> list[tuple[ClientSide, ServerSide]]:
        rows = psutil_rows()
        out = []
        for target in targets:
            port, addresses = target.port, target.addresses
            client: ClientSide = []
            server: ServerSide = []
            for status, local_ip, local_port, remote_ip, remote_port in rows:
                if local_port == port and local_ip in addresses:
                    if target.server_side:
                        server.append((status, remote_port))
                elif remote_port == port and remote_ip in addresses:
                    client.append((local_port, status))
            out.append((client, server))
        return out


register(PsutilBackend())
