"""The verdict by rounds: a pure function of measured numbers.

The trend verdict is judged by rounds. Every round replays one schedule; once a
round's requests are done, the *residual* ESTABLISHED count is what the client
keeps. A pool keeps at most as many sockets as it once had in flight, however
many requests follow; a leak keeps more the more requests are made. So the
verdict looks at how the residual changes from round to round, and at how far
it ends above the most requests ever in flight (``peak``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .margins import GROWTH, GROWTH_MIN_EXCESS, PLATEAU, PLATEAU_MAX_RISE, UNDECIDED



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
    * plateau too: the rounds after the first are a plateau on their own, and the
      first ended lower, refilled within what was in flight: a pool whose idle
      connections closed while the first round settled (its idle timeout shorter
      than a loaded settle);
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
    if len(residuals) >= 3 and first < residuals[1] <= peaks[1]:
        later = judge_trend(residuals[1:], peaks[1:], requests_per_round)
        if later.verdict == PLATEAU:  # a soak's pool: 0 -> 5 -> 5 -> 5 -> 5 -> 5 (idle cap 5), once judged growth
            return trend(PLATEAU, f"the first round ended at {first}, below the {residuals[1]} kept after the "
                                  f"next (idle connections closed as it settled); since then: {later.reason}")
    if not final:
        return trend(UNDECIDED, f"{rise:+d} over {len(residuals)} rounds ({unexplained:+d} beyond the peak in "
                                f"flight), {excess:+d} against the peak: more rounds needed")
    if unexplained > PLATEAU_MAX_RISE:
        return trend(GROWTH, f"kept {rise} more sockets after {later_requests} more requests, {unexplained} "
                             f"beyond the peak in flight ({per_request:.3f} per request)")
    return trend(PLATEAU, f"{rise:+d} over {len(residuals)} rounds, {unexplained:+d} beyond the peak in flight: "
                          f"within a pool's {PLATEAU_MAX_RISE}")
