"""Misbehaviour on purpose: every fault the slow server knows, defined once.

A per-request fault is one ``Fault`` in ``FAULTS``. From that entry alone come:
the ``--fault NAME`` flag's choices and help, the ``?fault=NAME`` query
parameter, the ``fault=NAME`` argument of the ``start_slow_server`` fixture and
of ``fault_args``, and the ``/stats`` counter it adds to. Server-wide
misbehaviour with a value (``--idle-close S``) is one ``Knob`` in ``KNOBS``, and
its flag and fixture argument come from that entry the same way.

Adding a fault: write what the connection does when the delay is over (a
``strike`` taking the connection, which offers ``write``, ``close`` and
``reset``), and add a ``Fault`` line below. Nothing else changes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Protocol

from ..values import positive_float, positive_int

BODY = b"ok\n"


def response_head(status: bytes, length: int, keep_alive: bool, content_type: bytes = b"text/plain") -> bytes:
    """An HTTP/1.1 response head with Content-Length and Connection."""
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n"
        b"Connection: " + connection + b"\r\n\r\n"
    )


class Struck(Protocol):
    """What a fault may do to the connection it strikes."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def reset(self) -> None: ...

    def close_uncleanly(self) -> None: ...


@dataclass(frozen=True)
class Fault:
    """One per-request fault.

    ``strike`` runs when the request's delay is over, instead of the answer; a
    fault whose ``strike`` is None never answers at all (its requests wait until
    the client hangs up or the server stops). ``counter`` is the ``/stats`` key:
    it counts strikes, or, for a fault that never answers, the requests waiting
    now (a gauge).
    """

    name: str
    help: str
    counter: str
    strike: Callable[[Struck], None] | None

    @property
    def never_answers(self) -> bool:
        return self.strike is None


def _reset(conn: Struck) -> None:
    conn.reset()


def _reset_mid_response(conn: Struck) -> None:
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")  # the status line and part of a header
    conn.reset()


def _truncate(conn: Struck) -> None:
    conn.write(response_head(b"200 OK", 100, False) + BODY)  # promises 100 bytes, sends 3
    conn.close()


def _unclean_close(conn: Struck) -> None:
    conn.write(response_head(b"200 OK", len(BODY), True) + BODY)  # a whole answer, promising keep-alive
    conn.close_uncleanly()


FAULTS: tuple[Fault, ...] = (
    Fault("reset", "after the delay, RST instead of an answer (also ?fail=reset)", "resets_sent", _reset),
    Fault("reset-mid-response", "part of the head, then RST", "resets_sent", _reset_mid_response),
    Fault("truncate", "Content-Length 100, 3 bytes sent, then FIN", "truncated_sent", _truncate),
    Fault("hang", "never answer", "hanging", None),
    Fault("unclean-close", "a whole keep-alive answer, then FIN without TLS close_notify (over plain HTTP: the "
          "answer, then FIN)", "unclean_closes", _unclean_close),
)
BY_NAME: dict[str, Fault] = {f.name: f for f in FAULTS}
COUNTERS: tuple[str, ...] = tuple(dict.fromkeys(f.counter for f in FAULTS))  # /stats keys, each once
GAUGES: frozenset[str] = frozenset(f.counter for f in FAULTS if f.never_answers)  # rise and fall: not counters

FAULT_FLAG = "--fault"
FAULT_QUERY = ("fault", "fail")  # ?fail= is the older spelling, kept


def fault_help() -> str:
    return "; ".join(f"{f.name}: {f.help}" for f in FAULTS)


@dataclass(frozen=True)
class Knob:
    """One server-wide misbehaviour with a value: flag, fixture argument, parser."""

    name: str  # the fixture's argument and the attribute of Faults
    flag: str
    parse: Callable[[str], Any]
    metavar: str
    help: str


KNOBS: tuple[Knob, ...] = (
    Knob("every", "--fault-every", positive_int, "N", "the fault hits every N-th request (default 1: all)"),
    Knob("idle_close", "--idle-close", positive_float, "S",
         "close keep-alive connections idle for S seconds (counted as idle_closed)"),
    Knob("stop_accepting_after", "--stop-accepting-after", positive_int, "N",
         "close the listener once N requests were answered (open connections keep working)"),
)


@dataclass(frozen=True)
class Faults:
    """What one server does wrong on purpose. ``fault`` hits every ``every``-th
    request (counting from 1, /stats left out); ``idle_close`` closes keep-alive
    connections idle that many seconds; ``stop_accepting_after`` closes the
    listener once that many requests were answered."""

    fault: str | None = None
    every: int = 1
    idle_close: float | None = None
    stop_accepting_after: int | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in BY_NAME:
            raise ValueError(f"fault={self.fault!r}: not a fault; faults are {', '.join(BY_NAME)}")


assert [f.name for f in fields(Faults)] == ["fault", *(k.name for k in KNOBS)], "one Faults field per knob"


def fault_args(**faults: Any) -> tuple[str, ...]:
    """The server's flags for fixture-style arguments (``fault="hang", every=5``);
    raises ValueError naming an unknown argument or a bad value."""
    unknown = sorted(set(faults) - {"fault", *(k.name for k in KNOBS)})
    if unknown:
        raise ValueError(f"unknown fault argument {unknown[0]!r}: use fault, " + ", ".join(k.name for k in KNOBS))
    chosen = Faults(**{k: v for k, v in faults.items() if v is not None})
    args: list[str] = []
    if chosen.fault is not None:
        args += [FAULT_FLAG, chosen.fault]
    for knob in KNOBS:
        value = getattr(chosen, knob.name)
        if value is not None and not (knob.name == "every" and chosen.fault is None):
            args += [knob.flag, str(knob.parse(str(value)))]
    return tuple(args)


__all__ = ["BODY", "COUNTERS", "FAULTS", "GAUGES", "KNOBS", "Fault", "Faults", "Knob", "fault_args", "response_head"]
