"""The knobs every fixed variant in the catalog sets with its own library's API."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ClientTuning:
    """Seconds and connection counts, as the seed's fixed client set them.

    ``max_in_flight_per_host`` is for libraries whose only per-host knob caps
    every connection, not just idle ones (aiohttp): it must exceed the bursts
    of the schedule, or requests queue and the schedule stretches.
    """

    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    idle_timeout: float = 0.5
    max_idle_per_host: int = 2
    max_idle_total: int = 5
    max_hosts: int = 10
    max_in_flight_per_host: int = 50

    def as_dict(self) -> dict:
        return asdict(self)


def tuning_for(delay: float, idle_timeout: float) -> ClientTuning:
    """Knobs for a server delay (s): reads time out well after the delay."""
    return ClientTuning(read_timeout=max(1.0, 5 * delay), idle_timeout=idle_timeout)
