"""The exact check: sockets abandoned by the client, proved one by one.

A pool cannot hide an idle connection from a burst of more concurrent requests
than the client holds sockets: it must hand out every idle one before it opens
another. So after such a burst (a *sweep*), a socket the client held before and
still holds, that received no byte during the sweep, is in no pool's rotation:
it was abandoned, i.e. leaked. Counts of bytes come from the kernel's tcp_info
(``harness.sampling``); this module only compares them. Pure functions, no I/O.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .margins import GROWTH, PLATEAU, PLATEAU_MAX_RISE, UNDECIDED

HELD = ("ESTABLISHED", "CLOSE_WAIT")
# Tolerance 0: a socket that received nothing through a sweep larger than everything the client held is
# out of rotation whatever the pool; healthy pools of 1 to 500, per-thread sessions and connection-close
# clients showed 0 in every run (tests/test_judging.py, experiments/), so one abandoned socket is a leak.
ABANDONED_ALLOWED = 0


@dataclass(frozen=True)
class AbandonedSocket:
    local_port: int
    state: str
    idle_ms: int  # since it last received data (tcp_info's last_data_recv)


@dataclass(frozen=True)
class Sweeps:
    """What the sweeps found. ``requests`` is how many requests the verdict rests on:
    those sent before the last sweep (a socket leaked in the last one is not tested)."""

    verdict: str
    reason: str
    abandoned: tuple[AbandonedSocket, ...]
    sweeps: int
    burst: int  # concurrent requests of the largest sweep
    requests: int

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "reason": self.reason, "sweeps": self.sweeps, "burst": self.burst,
                "requests": self.requests,
                "abandoned": [{"local_port": s.local_port, "state": s.state, "idle_ms": s.idle_ms}
                              for s in self.abandoned]}


def sweep_size(held: int, peak_in_flight: int, least: int) -> int:
    """Concurrent requests that must reach every idle socket: more than all the
    client holds, and more than it ever had in flight besides; at least ``least``."""
    return max(2 * held, held + peak_in_flight, least)


def abandoned_through(before: Mapping[int, tuple[str, int, int]],
                      after: Mapping[int, tuple[str, int, int]]) -> list[AbandonedSocket]:
    """Sockets held before and after a sweep whose bytes received did not change.

    ``before`` and ``after`` map a local port to (state, bytes received, ms since
    the last data), as ``harness.sampling`` reads them. A socket opened or
    closed during the sweep is in only one of them and is not judged.
    """
    found = []
    for port, (state, received, _) in before.items():
        now = after.get(port)
        if now is not None and state in HELD and now[0] in HELD and now[1] == received:
            found.append(AbandonedSocket(port, now[0], now[2]))
    return sorted(found, key=lambda s: -s.idle_ms)


# Why a sweep proved nothing: fewer in flight at once than sockets held, or sockets found idle through a burst
# that was not all in flight at once
FEWER_THAN_HELD = "a pool capped below what it holds?"
PARTIAL = "a client of several pools can leave one's idle sockets out of a burst not all in flight"
FAILED = "too many of its requests failed, and a failed request is in flight no more"


def judge_sweeps(abandoned: Sequence[AbandonedSocket], sweeps: int, burst: int, requests: int,
                 inconclusive: str | None = None, why: str = FEWER_THAN_HELD) -> Sweeps:
    """Growth when more than ``ABANDONED_ALLOWED`` sockets were abandoned; else a
    plateau resting on ``requests`` requests. ``inconclusive`` (how many of a sweep's burst
    were in flight at once, ``why`` that proves nothing): undecided, whatever was found."""
    if inconclusive is not None:
        return Sweeps(UNDECIDED, f"inconclusive: {inconclusive} requests in flight at once, so no socket could be "
                                 f"proved abandoned ({why})", (), sweeps, burst, requests)
    if len(abandoned) > ABANDONED_ALLOWED:
        oldest = ", ".join(f"port {s.local_port} idle {s.idle_ms / 1000:.1f} s" for s in abandoned[:5])
        return Sweeps(GROWTH, f"{len(abandoned)} socket{'s' if len(abandoned) != 1 else ''} abandoned (held, no data "
                              f"through a burst of {burst} concurrent requests): {oldest}"
                              + (" ..." if len(abandoned) > 5 else ""), tuple(abandoned), sweeps, burst, requests)
    return Sweeps(PLATEAU, f"no socket abandoned in {requests} requests: a leak rarer than about 1 in {requests} "
                           f"could pass", (), sweeps, burst, requests)


def judge_runs(held_after: Sequence[int], abandoned: int | None = None) -> tuple[str, str]:
    """A test run N times (``socket_leaks(rounds=N)``): the sockets it holds after each
    run, beyond what it held before, and ``abandoned``: how many of those held since
    an earlier run received no byte since (None where tcp_info cannot be read).

    The harness's two rules at a test's scale. A pool or a cached client fills in the
    first run and keeps that; a leak keeps more after every run. The rounds' margin:
    a rise beyond ``PLATEAU_MAX_RISE`` that never paused is growth however the sockets
    are used. A smaller rise (a leak of one socket a run, or a pool meeting one more
    concurrent request) is told apart by the exact check's proof: a leaked socket
    never receives again, a pool reuses what it holds. So growth when the count rose
    after every run and either rose beyond the margin, or more than
    ``ABANDONED_ALLOWED`` sockets were abandoned, or tcp_info cannot be read
    (tolerance 0: the same body each run); otherwise a plateau. Returns (verdict, reason)."""
    if len(held_after) < 2:
        raise ValueError("rounds of a test need at least 2 runs")
    path = " -> ".join(map(str, held_after))
    said = f"held {path} after {len(held_after)} runs"
    if not all(b > a for a, b in zip(held_after, held_after[1:])):
        return PLATEAU, f"{said}: not rising after every run (a pool filled once)"
    if abandoned is not None and abandoned > ABANDONED_ALLOWED:
        return GROWTH, (f"{said}: more after every run, {abandoned} of them abandoned (held since an earlier run, "
                        "no byte received since)")
    if held_after[-1] - held_after[0] > PLATEAU_MAX_RISE:
        return GROWTH, f"{said}: more after every run, {held_after[-1] - held_after[0]} more in all"
    if abandoned is None:
        return GROWTH, f"{said}: more after every run (no tcp_info here to prove them abandoned)"
    return PLATEAU, (f"{said}: rose by {held_after[-1] - held_after[0]}, within a pool's {PLATEAU_MAX_RISE}, and "
                     "every socket held since an earlier run received data since (a pool reusing what it holds)")
