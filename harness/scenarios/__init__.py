"""Scenarios: the experiments the harness knows. The seed's four table rows,
the fault scenarios, idle caps across hosts, and a command judged by its series.

A scenario fills in an ExperimentResult from a Run (or, for ``command``, from a
server and a process). Never imports the runner, the report or a face, and
never writes a file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..clients import CATALOG, expectation
from .command import command
from .faults import HANG_EVERY, HANG_REQUESTS, STALLED, STOP_AFTER, hang, stalled_handshake, stop_accepting
from .hosts import idle_across_hosts
from .seed import WARM_UP_REQUESTS, close_on_error, idle_handling, persistent_connections, tcp_count
from .watch import watch

TCP_COUNT = "tcp_count"
COMMAND = "command"
WATCH = "watch"
SEVERAL_HOSTS = (TCP_COUNT,)  # the scenarios that take several servers

# name: the function that measures it on a Run (see seed.py for the signature)
SCENARIOS: dict[str, Callable[..., None]] = {
    "persistent_connections": persistent_connections,
    "idle_handling": idle_handling,
    "close_on_error": close_on_error,
    TCP_COUNT: tcp_count,
    "hang": hang,
    "stop_accepting": stop_accepting,
    "stalled_handshake": stalled_handshake,
}


@dataclass(frozen=True)
class SeedRow:
    """One row of the seed's comparison table: the scenario that measures it and its title."""

    scenario: str
    title: str  # in the table
    progress: str  # in a line of progress


SEED_ROWS: tuple[SeedRow, ...] = (
    SeedRow("persistent_connections", "Persistent connections", "persistent connections"),
    SeedRow("idle_handling", "Idle handling", "idle handling"),
    SeedRow("close_on_error", "Close on error", "close on error"),
    SeedRow(TCP_COUNT, "TCP count", "TCP count"),
)
SEED_PAIR = ("faulty", "fixed")  # the seed's own two clients, measured in every row


def default_expectation(target: object) -> str | None:
    """The verdict a catalog variant must get; None for anything else."""
    variant = CATALOG.get(target) if isinstance(target, str) else None
    return expectation(variant.kind) if variant else None


__all__ = ["COMMAND", "HANG_EVERY", "HANG_REQUESTS", "SCENARIOS", "SEED_PAIR", "SEED_ROWS", "SEVERAL_HOSTS",
           "STALLED", "STOP_AFTER", "TCP_COUNT", "WARM_UP_REQUESTS", "SeedRow", "command", "default_expectation",
           "idle_across_hosts", "WATCH", "watch"]
