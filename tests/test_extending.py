"""Cheap to extend: a sampler backend is one class and one registration; a
server fault is one line of ``harness.server.faults``, and its flag, query
parameter, fixture argument and ``/stats`` counter all come from that line."""
from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence

import pytest

from harness.options import settings_from
from harness.values import OptionError
from harness.sampling import BACKENDS, Backend, SocketCounter, register
from harness.sampling.backends import Target
from harness.server import FAULTS, fault_args
from harness.server.faults import GAUGES

from .test_server import connect, read_response
from .waiting import wait_for


class SocketsOfThisProcess(Backend):
    """A backend written for this test: this process's own sockets, by psutil."""

    name = "this-process"
    summary = "only this process's sockets (a test's own backend)"

    def available(self) -> bool:
        return True

    def scan(self, targets: Sequence[Target]):
        import psutil

        rows = [(c.status, c.laddr.port, c.raddr.ip, c.raddr.port)
                for c in psutil.Process().net_connections(kind="tcp") if c.raddr]
        return [([(local, status) for status, local, ip, port in rows if port == t.port and ip in t.addresses], [])
                for t in targets]


@pytest.fixture
def registered():
    backend = register(SocketsOfThisProcess())
    try:
        yield backend
    finally:
        BACKENDS.pop(backend.name)


def test_a_new_sampler_backend_is_one_registration(registered, slow_server):
    assert settings_from({"sampler": "this-process"}).sampler == "this-process"  # the option accepts it at once
    mine = SocketCounter(slow_server.host, slow_server.port, slow_server.own_ports, backend="this-process")
    kernel = SocketCounter(slow_server.host, slow_server.port, slow_server.own_ports, backend="auto")
    # the kernel's table may hold TIME_WAITs of an earlier server on this port (another worker's): they belong to no
    # process, so only the kernel sees them; counted against a baseline, as every experiment does
    kernel.ignore_existing_time_wait()
    held = [socket.create_connection((slow_server.host, slow_server.port), timeout=5) for _ in range(3)]
    try:
        assert mine.backend is registered
        assert mine.snapshot().sockets == kernel.snapshot().sockets
        assert sorted(s.local_port for s in mine.snapshot().sockets) == sorted(s.getsockname()[1] for s in held)
    finally:
        for s in held:
            s.close()


def test_an_unregistered_backend_is_refused_by_name():
    with pytest.raises(OptionError, match="'this-process' is not a sampler: use auto, netlink or psutil"):
        settings_from({"sampler": "this-process"}, environ={})


def test_every_fault_has_its_flag_and_help():
    done = subprocess.run([sys.executable, "-m", "harness.server", "--help"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0
    flat = " ".join(done.stdout.split())
    for fault in FAULTS:
        assert fault.name in flat.split("--fault {")[1].split("}")[0].split(","), fault.name
        assert " ".join(fault.help.split()) in flat, fault.help
        assert fault_args(fault=fault.name, every=3) == ("--fault", fault.name, "--fault-every", "3")


def test_every_fault_answers_its_query_parameter_and_counts(slow_server):
    before = slow_server.stats()
    assert {f.counter for f in FAULTS} <= set(before), before
    for fault in FAULTS:
        with connect(slow_server) as s:
            s.sendall(f"GET /?fault={fault.name}&delay=0 HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            if fault.counter in GAUGES:  # never answered: counted while it waits, uncounted once we hang up
                wait_for(slow_server.stats, lambda st: st[fault.counter] == before[fault.counter] + 1)
                continue
            try:
                received = s.recv(4096)
            except ConnectionResetError:
                received = b""
            assert not received.startswith(b"HTTP/1.1 400"), received
        after = wait_for(slow_server.stats, lambda st: st[fault.counter] >= before[fault.counter] + 1)
        assert after["requests_served"] == before["requests_served"], "a fault is not an answer"
        before = after
    wait_for(slow_server.stats, lambda st: all(st[c] == 0 for c in GAUGES))  # the hung one was hung up on


@pytest.mark.parametrize("query", ["fault=melt", "fail=melt"])
def test_an_unknown_fault_is_400(slow_server, query):
    with connect(slow_server) as s:
        s.sendall(f"GET /?{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        response = read_response(s)
    assert response.startswith(b"HTTP/1.1 400") and response.endswith(b"unknown fault melt\n"), response


def test_a_bad_fault_argument_names_itself():
    with pytest.raises(ValueError, match="fault='melt': not a fault; faults are reset, reset-mid-response"):
        fault_args(fault="melt")
    with pytest.raises(ValueError, match="unknown fault argument 'evry'"):
        fault_args(fault="hang", evry=5)
