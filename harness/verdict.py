"""Verdicts: pure functions of measured numbers, no I/O.

The trend verdict is judged by rounds. Every round replays one schedule; once a
round's requests are done, the *residual* ESTABLISHED count is what the client
keeps. A pool keeps at most as many sockets as it once had in flight, however
many requests follow; a leak keeps more the more requests are made. So the
verdict looks at how the residual changes from round to round, and at how far
it ends above the most requests ever in flight (``peak``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

GROWTH = "growth"
PLATEAU = "plateau"
UNDECIDED = "undecided"

# A rise of the residual that the peak in flight does not explain: under
# scheduling jitter a round can meet one or two more concurrent connections than
# the peak counter saw (a request counts as done a moment after its socket went
# back to the pool), and a pool keeps them. Healthy pools measured: <= 2.
PLATEAU_MAX_RISE = 2
# Leaks measured ended >= 5 sockets above the peak in flight; healthy pools <= 2.
# 5 leaves a margin of 2 on both sides of that gap.
GROWTH_MIN_EXCESS = 5


@dataclass(frozen=True)
class Trend:
    """The trend verdict, with the figures it was judged on."""

    verdict: str
    residuals: tuple[int, ...]
    peaks: tuple[int, ...]
    requests_per_round: int
    rise: int
    unexplained_rise: int
    excess_over_peak: int
    sockets_per_request: float
    reason: str

    @property
    def peak_in_flight(self) -> int:
        return self.peaks[-1]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["residuals"] = list(self.residuals)
        data["peaks"] = list(self.peaks)
        return data


def judge_trend(
    residuals: Sequence[int], peaks: Sequence[int], requests_per_round: int, final: bool = False
) -> Trend:
    """Judge growth or plateau from the residual ESTABLISHED count after each round.

    ``peaks[k]`` is the most requests in flight at any moment up to the end of
    round k. A pool may keep more sockets only when more were in flight at once,
    so only the rise the peaks do not explain counts toward growth.

    * growth: the unexplained rise is above ``PLATEAU_MAX_RISE`` and the residual
      ends at least ``GROWTH_MIN_EXCESS`` above the peak in flight;
    * plateau: the unexplained rise is within ``PLATEAU_MAX_RISE`` and the last
      round added nothing;
    * otherwise undecided: more rounds are needed. With ``final`` (no more rounds
      can be run) the unexplained rise alone decides.
    """
    if len(residuals) < 2 or len(peaks) != len(residuals):
        raise ValueError("a trend needs at least two rounds, with a peak for each")
    first, last, previous = residuals[0], residuals[-1], residuals[-2]
    rise = last - first
    unexplained = rise - (peaks[-1] - peaks[0])
    excess = last - peaks[-1]
    later_requests = requests_per_round * (len(residuals) - 1)
    per_request = unexplained / later_requests if later_requests else 0.0

    def trend(verdict: str, reason: str) -> Trend:
        return Trend(verdict, tuple(residuals), tuple(peaks), requests_per_round, rise, unexplained, excess,
                     round(per_request, 4), reason)

    if unexplained > PLATEAU_MAX_RISE and excess >= GROWTH_MIN_EXCESS:
        return trend(GROWTH, f"kept {rise} more sockets after {later_requests} more requests, "
                             f"ending {excess} above the {peaks[-1]} ever in flight")
    if unexplained <= PLATEAU_MAX_RISE and last <= previous:
        return trend(PLATEAU, f"kept {last} sockets after the last round, {rise:+d} since the first "
                              f"(peak in flight {peaks[0]} -> {peaks[-1]}), no longer rising")
    if not final:
        return trend(UNDECIDED, f"{rise:+d} over {len(residuals)} rounds ({unexplained:+d} beyond the peak in "
                                f"flight), {excess:+d} against the peak: more rounds needed")
    if unexplained > PLATEAU_MAX_RISE:
        return trend(GROWTH, f"kept {rise} more sockets after {later_requests} more requests, {unexplained} "
                             f"beyond the peak in flight ({per_request:.3f} per request)")
    return trend(PLATEAU, f"{rise:+d} over {len(residuals)} rounds, {unexplained:+d} beyond the peak in flight: "
                          f"within a pool's {PLATEAU_MAX_RISE}")


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
    """What an experiment concluded: the trend (if judged) and every check."""

    passed: bool
    summary: str
    trend: Trend | None = None
    checks: list[Check] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "summary": self.summary,
            "trend": self.trend.as_dict() if self.trend else None,
            "checks": [c.as_dict() for c in self.checks],
        }


def combine(expect: str | None, trend: Trend | None, checks: Sequence[Check]) -> Verdict:
    """Pass when the trend matches ``expect`` (if given) and every check passed."""
    failures = [c for c in checks if not c.passed]
    parts = []
    passed = not failures
    if trend is not None:
        if expect is not None and trend.verdict != expect:
            passed = False
            parts.append(f"expected {expect}, measured {trend.verdict}: {trend.reason}")
        else:
            parts.append(f"{trend.verdict}: {trend.reason}")
    parts += [f"{c.name} failed: {c.detail}" for c in failures]
    if not parts:
        parts += [c.detail for c in checks] or ["nothing to judge"]
    return Verdict(passed, "; ".join(parts), trend, list(checks))


HELD_STATES = ("ESTABLISHED", "CLOSE_WAIT")


def format_sockets(sockets: Iterable[tuple[int, str]], limit: int = 40) -> str:
    """goleak-style listing: one 'local port  STATE' line per socket the client
    still holds (ESTABLISHED, CLOSE_WAIT); the others (closed by the client,
    e.g. TIME_WAIT) summed by state on a last line."""
    rows = sorted(sockets, key=lambda s: (s[1], s[0]))
    held = [r for r in rows if r[1] in HELD_STATES]
    lines = [f"  local port {port:<6} {state}" for port, state in held[:limit]]
    if len(held) > limit:
        lines.append(f"  ... and {len(held) - limit} more held")
    closed: dict[str, int] = {}
    for _, state in rows:
        if state not in HELD_STATES:
            closed[state] = closed.get(state, 0) + 1
    if closed:
        lines.append("  closed by the client (churn, not held): "
                     + ", ".join(f"{n} {state}" for state, n in sorted(closed.items())))
    return "\n".join(lines)
