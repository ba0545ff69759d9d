"""Checks: one promise each, measured against a limit; and how checks and a
trend combine into a verdict. Pure functions, no I/O."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from .abandoned import Sweeps
from .margins import GROWTH


class JudgedTrend(Protocol):
    """What ``combine`` needs of a trend (``Trend`` by rounds, ``SeriesTrend`` by windows)."""

    verdict: str
    reason: str

    def as_dict(self) -> dict: ...


@dataclass(frozen=True)
class Check:
    """One promise checked against the measurements."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def check_never_falls(name: str, values: Sequence[int]) -> Check:
    """The seed's 'TCP count keeps increasing': the count never goes down."""
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            return Check(name, False, f"fell from {values[i - 1]} to {values[i]} at point {i} of {len(values)}")
    shown = ", ".join(map(str, values[:6])) + (" ..." if len(values) > 6 else "")
    return Check(name, True, f"never fell over {len(values)} points ({shown} -> {values[-1] if values else 0})")


def check_equals(name: str, measured: int, expected: int, tolerance: int, what: str) -> Check:
    ok = abs(measured - expected) <= tolerance
    return Check(name, ok, f"{what}: {measured}, expected {expected} (tolerance {tolerance})")


def check_at_most(name: str, measured: float, limit: float, what: str) -> Check:
    return Check(name, measured <= limit, f"{what}: {measured}, limit {limit}")


def check_bounded(name: str, rows: Iterable[tuple[float, int, int]], allowance: int) -> Check:
    """Every sample: established <= in-flight peak during the sample + allowance.

    ``rows`` are (t, established, in_flight_peak).
    """
    worst: tuple[float, int, int] | None = None
    count = 0
    for t, established, in_flight in rows:
        count += 1
        if established - in_flight > allowance and (worst is None or established - in_flight > worst[1] - worst[2]):
            worst = (t, established, in_flight)
    if worst is None:
        return Check(name, True, f"ESTABLISHED <= in flight + {allowance} in all {count} samples")
    t, established, in_flight = worst
    return Check(name, False, f"at t={t:.3f} s ESTABLISHED was {established} with {in_flight} in flight "
                              f"(limit {in_flight + allowance})")


@dataclass
class Verdict:
    """What an experiment concluded: the trend (if judged), the sweeps' exact check
    (if run), every check, and the verdict word they add up to."""

    passed: bool
    summary: str
    trend: JudgedTrend | None = None
    checks: list[Check] = field(default_factory=list)
    sweeps: Sweeps | None = None

    @property
    def word(self) -> str | None:
        """growth when the trend or the sweeps say so; else the trend's word; None without a trend."""
        if self.trend is None:
            return None
        if self.sweeps is not None and self.sweeps.verdict == GROWTH:
            return GROWTH
        return self.trend.verdict

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "summary": self.summary,
            "trend": self.trend.as_dict() if self.trend else None,
            "sweeps": self.sweeps.as_dict() if self.sweeps else None,
            "checks": [c.as_dict() for c in self.checks],
        }


def combine(expect: str | None, trend: JudgedTrend | None, checks: Sequence[Check],
            sweeps: Sweeps | None = None) -> Verdict:
    """Pass when the verdict word (trend and sweeps) matches ``expect`` (if given)
    and every check passed. The trend's reason and the sweeps' stand side by side."""
    failures = [c for c in checks if not c.passed]
    verdict = Verdict(not failures, "", trend, list(checks), sweeps)
    parts = []
    if trend is not None:
        reasons = trend.reason + (f"; {sweeps.reason}" if sweeps is not None else "")
        if expect is not None and verdict.word != expect:
            verdict.passed = False
            parts.append(f"expected {expect}, measured {verdict.word}: {reasons}")
        else:
            parts.append(f"{verdict.word}: {reasons}")
    parts += [f"{c.name} failed: {c.detail}" for c in failures]
    if not parts:
        parts += [c.detail for c in checks] or ["nothing to judge"]
    verdict.summary = "; ".join(parts)
    return verdict


def churn_gate(max_churn: float | None, new_connections_per_request: float) -> list[Check]:
    """The optional second gate: new connections per request at most ``max_churn``
    (``--max-churn``); no check at all when it is off (None)."""
    if max_churn is None:
        return []
    return [check_at_most("churn", new_connections_per_request, max_churn, "new connections per request")]
