"""The socket-leak check of any test: the TCP sockets this process holds after a
test (ESTABLISHED, CLOSE_WAIT or SYN_SENT, to any remote address) that it did
not hold before, once sockets still closing have had their moment; each named
with its remote end, its state and where it was opened.

Unlike ResourceWarning or a handle count, it reads the kernel's socket table, so
a socket that a pool or a global still holds is seen. The pytest plugin runs it
for every test with ``--socket-leaks`` and for one with ``@pytest.mark.socket_leaks``.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .judging import judge_runs
from .values import OptionError
from .sampling.owned import OwnedSocket, held_by, received_bytes, sockets_of
from .sampling.sites import Site, listened_ports, site_for

# A client that closes a socket in a thread of its own (a pool's reaper, an event loop's callback) does so
# a moment after the test returns; 0.5 s covers a loaded 2-core machine, and a clean test waits not at all.
SETTLE_S = 0.5
SETTLE_EVERY_S = 0.02


@dataclass(frozen=True)
class Ignore:
    """What the check leaves alone: remote hosts or networks, ports, host:port pairs,
    and sockets opened in given modules (their creation site's file)."""

    networks: tuple = ()
    ports: frozenset[int] = frozenset()
    endpoints: frozenset[tuple[str, int]] = frozenset()
    modules: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], source: str) -> Ignore:
        """``10.0.0.0/8``, ``db.local`` / ``127.0.0.1``, ``:5432``, ``127.0.0.1:5432``,
        ``module:mypkg.pool``; raises OptionError naming the entry and ``source``."""
        networks, ports, endpoints, modules = [], set(), set(), []
        for raw in entries:
            entry = str(raw).strip()
            try:
                if not entry:
                    continue
                if entry.startswith("module:"):
                    name = entry[len("module:"):].strip()
                    if not name:
                        raise ValueError
                    modules.append(name.replace(".", "/"))
                elif entry.startswith(":"):
                    ports.add(_port(entry[1:]))
                elif "/" in entry:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                elif entry.count(":") == 1 or entry.startswith("["):
                    host, _, port = entry.rpartition(":")
                    endpoints.add((host.strip("[]"), _port(port)))
                else:
                    networks.append(ipaddress.ip_network(entry))
            except ValueError:
                raise OptionError(f"{source}: {entry!r} is not a host, network, :port, host:port or "
                                  "module:NAME to ignore") from None
        return cls(tuple(networks), frozenset(ports), frozenset(endpoints), tuple(modules))

    def __add__(self, other: Ignore) -> Ignore:
        return Ignore(self.networks + other.networks, self.ports | other.ports, self.endpoints | other.endpoints,
                      self.modules + other.modules)

    def covers(self, sock: OwnedSocket, site: Site | None) -> bool:
        host, port = sock.remote_host, sock.remote_port
        if port in self.ports or (host, port) in self.endpoints:
            return True
        if self.networks:
            address = ipaddress.ip_address(host)
            if any(address in network for network in self.networks):
                return True
        return site is not None and any(m in site.file or (site.via and m in site.via) for m in self.modules)


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError
    return port


@dataclass(frozen=True)
class Leak:
    socket: OwnedSocket
    site: Site | None


@dataclass
class Check:
    """One test's check: ``before`` taken when it starts (before its fixtures are set
    up), ``leaks`` after it ends (after their teardown)."""

    ignore: Ignore = field(default_factory=Ignore)
    before: frozenset[tuple[str, str]] = frozenset()  # (local, remote) of what was held: a state may change
    seconds: float = 0.0  # what the check cost: both readings and the settling
    reported: bool = False  # a leak already reported (by the rounds), not again at teardown
    servers: set[int] = field(default_factory=set)  # ports this process listened on: their accepted sockets are not

    def start(self) -> Check:
        started = time.perf_counter()
        owned, self.servers = sockets_of()
        self.before = frozenset((s.local, s.remote) for s in owned)
        self.seconds += time.perf_counter() - started
        return self

    def held_keys(self) -> frozenset[tuple[str, str]]:
        """(local, remote) of every socket this process holds now (one dump)."""
        started = time.perf_counter()
        owned, _ = sockets_of()
        self.seconds += time.perf_counter() - started
        return frozenset((s.local, s.remote) for s in owned)

    def keep_opened_since(self, earlier: frozenset[tuple[str, str]]) -> None:
        """Count what was opened since ``earlier`` (``held_keys``) as held before: a module's
        or a session's fixture set up for this test owns it, not the test."""
        self.before = self.before | (self.held_keys() - earlier)

    def keep(self, leaks: Iterable[Leak]) -> None:
        """Count these as held before (a pool's own, found by the rounds)."""
        self.before = self.before | {(leak.socket.local, leak.socket.remote) for leak in leaks}

    def _found(self) -> list[Leak]:
        """The sockets held now and not before, not ignored (one dump)."""
        found = [Leak(s, site_for(s.local)) for s in held_by(servers=self.servers | listened_ports())
                 if (s.local, s.remote) not in self.before]
        return [leak for leak in found if not self.ignore.covers(leak.socket, leak.site)]

    def held_now(self) -> list[Leak]:
        """The sockets held now and not before, not ignored (no settling)."""
        started = time.perf_counter()
        found = self._found()
        self.seconds += time.perf_counter() - started
        return found

    def leaks(self) -> list[Leak]:
        """The sockets held now and not before, not ignored, after at most SETTLE_S s of
        waiting for them to close."""
        started = time.perf_counter()
        pause = threading.Event()
        end = time.monotonic() + SETTLE_S
        while True:
            found = self._found()
            if not found or time.monotonic() >= end:
                break
            pause.wait(SETTLE_EVERY_S)  # a socket's state, polled with a deadline
        self.seconds += time.perf_counter() - started
        return found


def run_rounds(body: Callable[[], object], check: Check, rounds: int, first_done: bool = False
               ) -> tuple[str, str, list[Leak]]:
    """Run ``body`` ``rounds`` times (the first already, with ``first_done``), reading the
    held sockets and their bytes received (tcp_info) after each run; returns the
    verdict (``judge_runs``), its reason, and the sockets that appeared after the
    first run. Costs two dumps a run."""
    counts: list[int] = []
    first: set = set()
    seen: dict[str, tuple[int, int]] = {}  # local address -> (the run after which it was first held, bytes then)
    readings: dict[str, int] | None = None
    held: list[Leak] = []
    for run in range(rounds):
        if run or not first_done:
            body()
        held = check.held_now()
        readings = received_bytes()
        counts.append(len(held))
        for leak in held:
            seen.setdefault(leak.socket.local, (run, readings.get(leak.socket.local, -1) if readings else -1))
        if run == 0:
            first = {leak.socket for leak in held}
    abandoned = None
    if readings is not None:  # held since an earlier run, and not a byte received since
        abandoned = sum(1 for leak in held
                        if seen[leak.socket.local][0] < rounds - 1
                        and 0 <= seen[leak.socket.local][1] == readings.get(leak.socket.local))
    verdict, reason = judge_runs(counts, abandoned)
    return verdict, reason, [leak for leak in held if leak.socket not in first]


def describe(leaks: list[Leak]) -> str:
    """goleak's manner: what leaked, grouped by where it was opened, most first; each socket below."""
    groups: dict[str, list[Leak]] = {}
    for leak in leaks:
        groups.setdefault(str(leak.site) if leak.site else "an unknown place (opened before the check began)",
                          []).append(leak)
    lines = [f"socket leak: {len(leaks)} socket{'s' if len(leaks) != 1 else ''} opened by this test "
             f"{'are' if len(leaks) != 1 else 'is'} still held"]
    for where, group in sorted(groups.items(), key=lambda item: -len(item[1])):
        lines.append(f"  {len(group)} held, opened at {where}")
        lines += [f"    {leak.socket.state:<11} {leak.socket.local} -> {leak.socket.remote}" for leak in group[:20]]
        if len(group) > 20:
            lines.append(f"    ... and {len(group) - 20} more")
    return "\n".join(lines)
