"""A verdict from a time series alone, for clients the harness does not drive.

A command runs its own loop, so the harness cannot replay rounds or count the
requests in flight. It judges the held sockets (ESTABLISHED + CLOSE_WAIT) over
time instead:

* the first ``WARM_UP_FRACTION`` of the run is left out: a pool fills there;
* the rest is cut into ``WINDOWS`` equal windows (of time; of sample counts
  where the sampler stalled and a window of time got too few); each window's *floor* (its
  fewest held sockets, when the fewest requests were in flight) is what the
  client keeps, like a round's residual;
* a Theil–Sen slope of every judged sample, with its 95 % confidence bounds,
  says whether the count rises at all, robustly to bursts.

A pool's floor stops rising once it holds what its busiest moment needed, however
large; a leak's floor rises window after window. When the server reports the
most requests ever in flight at once (``peak``), a pool can keep at most that
many, so only the floor's rise that the peak's rise does not explain counts,
and a leak must end above the peak. Pure functions, no I/O.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .margins import GROWTH, GROWTH_MIN_EXCESS, PLATEAU, PLATEAU_MAX_RISE, UNDECIDED

WARM_UP_FRACTION = 0.25
WINDOWS = 5
MIN_SAMPLES_PER_WINDOW = 3  # a floor from fewer samples is too easily one lucky moment
# PLATEAU_MAX_RISE as for rounds (margins.py): a healthy pool's floor can differ
# by a connection or two with what happened to be in flight. Growth needs a floor rise above what a pool can show, in all steps between
# windows but one (a slow leak may add nothing in one window).
GROWTH_MIN_RISE = PLATEAU_MAX_RISE + 1
# GROWTH_MIN_EXCESS as for rounds (margins.py): leaks end >= 5 above the peak in
# flight, healthy pools <= 2.
# An undecided series at --duration is sampled EXTEND_FRACTION x --duration longer: once when its evidence is
# ambiguous (more of the same rarely settles it), up to MOST_EXTENSIONS times while its only lack is samples. A
# soak at --load 2 sampled 23 times in 4.7 s (the design is 20 a second), 14 after the warm-up where 15 are needed;
# three extensions give such a machine 2.5x --duration, ~35 samples, ~26 after the warm-up.
EXTEND_FRACTION = 0.5
MOST_EXTENSIONS = 3
MAX_POINTS = 300  # Theil–Sen costs O(n^2): 300 points are 45k slopes, ~20 ms
Z_95 = 1.959964  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class Slope:
    """Theil–Sen slope (units of y per unit of x) with its 95 % confidence bounds."""

    slope: float
    low: float
    high: float


def theil_sen(xs: Sequence[float], ys: Sequence[float]) -> Slope:
    """The median of all pairwise slopes, with Sen's (1968) distribution-free
    confidence bounds. At most ``MAX_POINTS`` evenly spaced points are used.

    Samples close in time are correlated, so the bounds are narrower than the
    truth; they serve only as a necessary condition, beside the window floors.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n > MAX_POINTS:
        picks = [round(i * (n - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)]
        xs, ys, n = [xs[i] for i in picks], [ys[i] for i in picks], MAX_POINTS
    slopes = sorted((ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(n) for j in range(i + 1, n) if xs[j] != xs[i])
    if not slopes:
        return Slope(0.0, 0.0, 0.0)
    count = len(slopes)
    middle = slopes[count // 2] if count % 2 else (slopes[count // 2 - 1] + slopes[count // 2]) / 2
    c = Z_95 * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    lower = max(0, math.floor((count - c) / 2) - 1)
    upper = min(count - 1, math.ceil((count + c) / 2))
    return Slope(middle, slopes[lower], slopes[upper])


@dataclass(frozen=True)
class SeriesTrend:
    """The verdict, with the figures it was judged on. Times in seconds."""

    verdict: str
    reason: str
    floors: tuple[int, ...]
    peaks: tuple[int, ...]
    peak_in_flight: int | None
    unexplained_rise: int
    window_s: float
    judged_from_s: float
    slope_per_s: float
    slope_low_per_s: float
    slope_high_per_s: float
    samples: int

    @property
    def residuals(self) -> tuple[int, ...]:
        return self.floors

    @property
    def too_few_samples(self) -> bool:
        """Undecided only because too few samples were judged (no window floors yet)."""
        return self.verdict == UNDECIDED and not self.floors

    def as_dict(self) -> dict:
        data = asdict(self)
        data["floors"], data["peaks"] = list(self.floors), list(self.peaks)
        return data


def judge_series(times: Sequence[float], held: Sequence[int],
                 peak_in_flight: Sequence[int] | None = None) -> SeriesTrend:
    """Judge growth or plateau from held-socket samples at ``times`` (s).

    ``peak_in_flight[i]``, if known, is the most requests in flight at once up to
    sample i. The floor's *unexplained rise* is its rise from the first judged
    window to the last, less the peak's rise over the same windows.

    * growth: the unexplained rise is at least ``GROWTH_MIN_RISE``, the floor rose
      in every step between windows but one, the Theil–Sen slope's lower bound
      is above zero, and (with peaks) the floor ends ``GROWTH_MIN_EXCESS`` or more
      above the peak in flight;
    * plateau: the unexplained rise is at most ``PLATEAU_MAX_RISE``, or the last
      two windows are no higher than an earlier one (the rise has stopped);
    * otherwise, or with too few samples, undecided: run longer.
    """
    if len(times) != len(held) or (peak_in_flight is not None and len(peak_in_flight) != len(times)):
        raise ValueError("times, held and peak_in_flight differ in length")
    start = times[0] + WARM_UP_FRACTION * (times[-1] - times[0]) if times else 0.0
    chosen = [i for i, t in enumerate(times) if t >= start]
    judged = [(times[i], held[i]) for i in chosen]
    span = judged[-1][0] - judged[0][0] if judged else 0.0
    empty = SeriesTrend(UNDECIDED, "", (), (), None, 0, 0.0, round(start, 3), 0.0, 0.0, 0.0, len(judged))
    if len(judged) < WINDOWS * MIN_SAMPLES_PER_WINDOW or span <= 0:
        return _with(empty, UNDECIDED, f"too few samples to judge ({len(judged)} after the warm-up, over {span:.2f} s; "
                                       f"{WINDOWS * MIN_SAMPLES_PER_WINDOW} needed): let it run longer")
    width = span / WINDOWS
    windows: list[list[int]] = [[] for _ in range(WINDOWS)]  # sample indexes
    for i in chosen:
        windows[min(WINDOWS - 1, int((times[i] - judged[0][0]) / width))].append(i)
    stalled = any(len(w) < MIN_SAMPLES_PER_WINDOW for w in windows)
    if stalled:
        # the sampler stalled (a loaded machine: psutil once took over a second for a scan), leaving a window by
        # time with too few samples: windows of equal sample counts instead, each at least MIN_SAMPLES_PER_WINDOW
        per = len(chosen) // WINDOWS
        windows = [chosen[k * per:(k + 1) * per] for k in range(WINDOWS - 1)] + [chosen[(WINDOWS - 1) * per:]]
    lowest = [min(w, key=lambda i: held[i]) for w in windows]  # the first sample at each window's floor
    floors = tuple(held[i] for i in lowest)
    peaks = tuple(max(held[i] for i in w) for w in windows)
    # the most ever in flight when each floor was seen: all a pool could have needed by then
    window_peaks = [peak_in_flight[i] for i in lowest] if peak_in_flight is not None else [0] * WINDOWS
    slope = theil_sen([t for t, _ in judged], [h for _, h in judged])
    rise = floors[-1] - floors[0]
    peak = max(peak_in_flight[i] for i in windows[-1]) if peak_in_flight is not None else None
    unexplained = rise - (window_peaks[-1] - window_peaks[0]) if peak_in_flight is not None else rise
    rising_steps = sum(b > a for a, b in zip(floors, floors[1:]))
    path = " -> ".join(map(str, floors))
    if stalled:
        width_text = f"windows of {len(chosen) // WINDOWS}+ samples (the sampler stalled: by time, one had fewer " \
                     f"than {MIN_SAMPLES_PER_WINDOW})"
    else:
        width_text = f"windows of {width:.2f} s"
    base = SeriesTrend(UNDECIDED, "", floors, peaks, peak, unexplained, round(width, 3), round(start, 3),
                       round(slope.slope, 4), round(slope.low, 4), round(slope.high, 4), len(judged))
    per_minute = f"{slope.slope * 60:+.1f} sockets/min (95 % bounds {slope.low * 60:+.1f} .. {slope.high * 60:+.1f})"
    in_flight = f", peak in flight {window_peaks[0]} -> {peak}" if peak is not None else ""
    above_peak = peak is None or floors[-1] - peak >= GROWTH_MIN_EXCESS
    if unexplained >= GROWTH_MIN_RISE and rising_steps >= WINDOWS - 2 and slope.low > 0 and above_peak:
        return _with(base, GROWTH, f"kept sockets rose {path} over {WINDOWS} {width_text}{in_flight}; "
                                   f"{per_minute}")
    stopped = floors[-1] <= max(floors[:-1]) and floors[-2] <= max(floors[:-2])
    if unexplained <= PLATEAU_MAX_RISE or stopped:
        beyond = " beyond the peak in flight" if peak is not None else ""  # a watched process has no such figure
        why = f"{unexplained:+d}{beyond}, within a pool's {PLATEAU_MAX_RISE}" \
            if unexplained <= PLATEAU_MAX_RISE else "no longer rising"
        return _with(base, PLATEAU, f"kept sockets {path} over {WINDOWS} {width_text}{in_flight} ({why}); "
                                    f"{per_minute}")
    return _with(base, UNDECIDED, f"kept sockets {path}{in_flight}: rising in {rising_steps} of {WINDOWS - 1} steps; "
                                  f"{per_minute}: let it run longer")


def sample_longer(trends: Sequence[SeriesTrend], extensions: int) -> bool:
    """After --duration and ``extensions`` extensions so far: sample longer (by
    ``EXTEND_FRACTION`` x --duration)? Only while no trend grows and some is
    undecided: once for any undecided trend, up to ``MOST_EXTENSIONS`` times while
    every undecided one only lacks samples."""
    if any(t.verdict == GROWTH for t in trends):
        return False
    undecided = [t for t in trends if t.verdict == UNDECIDED]
    if not undecided or extensions >= MOST_EXTENSIONS:
        return False
    return extensions == 0 or all(t.too_few_samples for t in undecided)


def _with(trend: SeriesTrend, verdict: str, reason: str) -> SeriesTrend:
    return dataclasses.replace(trend, verdict=verdict, reason=reason)
