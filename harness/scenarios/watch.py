"""``watch``: a running process (and its children), whatever it talks to. Its held
sockets are read every sample interval, grouped by remote endpoint, and each
endpoint's series is judged as a command's is (``harness.judging.series``): a
pool's count stops rising, a leak's keeps rising. No server of the harness's is
involved, so nothing is sent and the verdict rests on the series alone.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

from ..driving import ExperimentError, ExperimentResult, Progress, WatchFigures
from ..judging import EXTEND_FRACTION, GROWTH, UNDECIDED, SeriesTrend, combine, judge_series, sample_longer
from ..options import Settings
from ..sampling import Sample
from ..sampling.owned import OwnedSocket, sockets_of

PROGRESS_EVERY_S = 1.0
MOST_ENDPOINTS = 20  # endpoints kept in the series and the CSV: the busiest


def _held(pid: int) -> list[OwnedSocket]:
    """What ``pid`` and its children hold (a child may end meanwhile)."""
    try:
        children = [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        raise ExperimentError(f"process {pid} ended while it was watched") from None
    held, servers = sockets_of(pid, tuple(children))  # one dump for the whole tree
    return [s for s in held if s.local_port not in servers]


def _trends(rows: list[tuple[float, dict[str, int], int, int]]) -> list[SeriesTrend]:
    """Each endpoint's series so far, judged."""
    times = [t for t, _, _, _ in rows]
    return [judge_series(times, [counts.get(e, 0) for _, counts, _, _ in rows])
            for e in {e for _, counts, _, _ in rows for e in counts}]


def watch(pid: int, settings: Settings, result: ExperimentResult, progress: Progress, expect: str | None,
          ended: Callable[[], bool] = lambda: False) -> None:
    """Sample ``pid`` for ``settings.duration`` s (longer while still undecided, as
    a command is: ``harness.judging.sample_longer``), or until ``ended()`` (a command the harness started
    ends by itself); fill in ``result`` (growth when any endpoint grows, plateau when
    every one is a plateau, else undecided)."""
    started = time.monotonic()
    duration, extensions = settings.duration, 0
    rows: list[tuple[float, dict[str, int], int, int]] = []  # t, held by endpoint, ESTABLISHED, CLOSE_WAIT
    pause = threading.Event()
    next_progress = started + PROGRESS_EVERY_S
    try:
        while not ended():
            now = time.monotonic()
            held = _held(pid)
            counts: dict[str, int] = {}
            for s in held:
                counts[s.remote] = counts.get(s.remote, 0) + 1
            established = sum(s.state == "ESTABLISHED" for s in held)
            rows.append((round(now - started, 4), counts, established, sum(s.state == "CLOSE_WAIT" for s in held)))
            if now >= next_progress:
                busiest = max(counts.items(), key=lambda kv: kv[1], default=("-", 0))
                progress(f"{now - started:5.1f} s: {len(held)} sockets held to {len(counts)} endpoints "
                         f"(most: {busiest[1]} to {busiest[0]})")
                next_progress = now + PROGRESS_EVERY_S
            if now - started >= duration:
                if not sample_longer(_trends(rows), extensions):
                    break
                # not sure yet (a busy machine samples unevenly, say): sample longer rather than guess
                extensions, duration = extensions + 1, duration + EXTEND_FRACTION * settings.duration
                progress(f"undecided after {now - started:.1f} s: sampling {EXTEND_FRACTION * settings.duration:.1f} "
                         "s more")
            pause.wait(settings.sample_interval)  # the next sample's time, not a synchronisation
    finally:
        endpoints = sorted({e for _, counts, _, _ in rows for e in counts},
                           key=lambda e: -max(c.get(e, 0) for _, c, _, _ in rows))[:MOST_ENDPOINTS]
        result.hosts = endpoints
        result.samples = [Sample(t=t, round=0, cycle=0, in_flight=0, in_flight_peak=0, established=est,
                                 time_wait=0, close_wait=cw, other=0, server_established=None, label="",
                                 held_by_host=tuple(counts.get(e, 0) for e in endpoints))
                          for t, counts, est, cw in rows]
    times = [s.t for s in result.samples]
    trends = {e: judge_series(times, [s.held_by_host[i] for s in result.samples]) for i, e in enumerate(endpoints)}
    verdicts = {e: t.verdict for e, t in trends.items()}
    figures = WatchFigures(pid=pid, ran_s=round(time.monotonic() - started, 3), samples=len(rows),
                           endpoints={e: {"verdict": t.verdict, "reason": t.reason, "floors": list(t.floors),
                                          "peak_held": max(s.held_by_host[i] for s in result.samples)}
                                      for i, (e, t) in enumerate(trends.items())})
    result.figures = figures
    if not trends:
        raise ExperimentError(f"process {pid} held no socket in {figures.ran_s:.1f} s: nothing to judge")
    # the endpoint that decides: a growing one, else an undecided one, else the busiest plateau
    worst = next((e for e, v in verdicts.items() if v == GROWTH), None) or \
        next((e for e, v in verdicts.items() if v == UNDECIDED), endpoints[0])
    result.verdict = combine(expect, trends[worst], [])
