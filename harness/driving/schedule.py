"""The request schedule every client variant is driven by.

A cycle sends one periodic request plus 0..extra_max extra ones, all at once;
cycles start ``period`` seconds apart. The seed makes the schedule reproducible,
and every round of an experiment replays the same schedule, so a healthy pool
meets the same bursts each round.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Schedule:
    period: float
    extras: tuple[int, ...]

    @property
    def cycles(self) -> int:
        return len(self.extras)

    @property
    def requests(self) -> int:
        """Requests one replay of the schedule sends."""
        return sum(1 + extra for extra in self.extras)

    def requests_in_cycle(self, cycle: int) -> int:
        return 1 + self.extras[cycle]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["extras"] = list(self.extras)
        data["requests_per_round"] = self.requests
        return data


def make_schedule(cycles: int, period: float, extra_max: int, seed: int) -> Schedule:
    rng = random.Random(seed)
    return Schedule(period=period, extras=tuple(rng.randint(0, extra_max) for _ in range(cycles)))
