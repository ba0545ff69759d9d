"""The four rows of the seed's comparison table, each measured by one scenario.

* ``persistent_connections``: one request at a time; new connections per request.
* ``idle_handling``: after a burst, no traffic; are idle connections closed?
* ``close_on_error``: after a failed request, are idle connections closed?
* ``tcp_count``: rounds of the schedule; does the kept socket count grow?

Each fills in an ``ExperimentResult`` (figures, verdict, sockets left) from a
``Run``; the runner (``harness.runner``) starts and ends everything around it.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from ..clients import FaultyClient, FixedClient
from ..driving import (
    CloseOnErrorFigures,
    ExperimentError,
    ExperimentResult,
    IdleFigures,
    PersistentFigures,
    Progress,
    RoundsFigures,
    Run,
    make_schedule,
)
from ..judging import (
    FAILED,
    FEWER_THAN_HELD,
    GROWTH,
    PLATEAU,
    PARTIAL,
    UNDECIDED,
    Check,
    Sweeps,
    abandoned_through,
    judge_sweeps,
    sweep_size,
    check_at_most,
    check_bounded,
    check_equals,
    check_never_falls,
    churn_gate,
    combine,
    judge_trend,
)
from ..options import Settings

PERSISTENT_REQUESTS = 3  # one at a time: a pooling client needs exactly one connection for all
WARM_UP_REQUESTS = 4  # concurrent, so a pool capped at 2 idle must close some and keep 2
# The last pooled connection went idle when its own request ended, a few ms after
# the first (tens under load); the reaper closes it when its timer fires, and the
# harness sees that at its next sample (sample interval) after a psutil scan
# (~12 ms, more under load). 0.3 s covers all of that on a loaded 2-core machine.
IDLE_CLOSE_SLACK_S = 0.3
# A sweep's burst: at least 20 concurrent requests (a few sockets held must still meet a real burst); at
# most 2000 (threads, one a request)
SWEEP_LEAST, SWEEP_MOST = 20, 2000
# How long the server holds a sweep's answers for the burst to be all in flight at once: the client's own code
# costs ~1 ms a request on a loaded 2-core machine (the request threads are started before the hold, waiting on a
# gate: Driver.burst); 2 ms a request plus 0.25 s
# covers that, and stays under the fixed variants' 1 s read timeout with the 0.2 s delay on top (a client
# that timed out would fail requests the sweep made). Not reached in time: inconclusive, never a leak.
HOLD_LEAST_S, HOLD_PER_REQUEST_S = 0.25, 0.002
# A sweep that missed its barrier is tried once more, with a window fitted to the pace the server saw in the one
# missed (requests in flight at its deadline over its window): a loaded soak's pool of 500 had fewer than 19 of 100
# in flight in 0.45 s, then fewer than 67 of 132 in 0.51 s. 1.5 times the time that pace needs, since a pace
# under load varies by about half from burst to burst (the two above); at most 0.75 s, so that a held request's
# answer (at the window's end, SWEEP_THEN_S after it) comes well within the fixed variants' 1 s read timeout:
# fitted up to 2.5 s, and answered only the 0.2 s delay after it, a loaded soak's aiohttp-fixed timed out in its
# sweeps (a sweep must never fail a healthy client's requests). A pool as slow as the one above may then still
# miss: inconclusive, never a leak.
RETRY_PACE_MARGIN, HOLD_RETRY_MOST_S = 1.5, 0.75
# A missed barrier none of whose requests came in this share of its window's end: a burst that stopped rising (a
# pool capped in flight), not one still starting. Half: a client starting its requests at a steady pace, however
# slow, sends one far more often (17 a second on a starved soak machine: every ~60 ms of a 0.3-0.75 s window)
CAPPED_FLAT = 0.5
SWEEP_THEN_S = 0.0  # a sweep's answers once its barrier is reached or its window ends: at once
# Idle time is counted from the first warm-up request's end; its connection went
# back to the pool (and its idle clock started) less than a millisecond before.
# 0.05 s is that, plus the resolution of two consecutive samples' timestamps.
IDLE_EARLY_SLACK_S = 0.05


def hold_window_s(size: int, until: int, missed: tuple[int, float] | None = None) -> float:
    """Seconds a sweep of ``size`` requests gives its burst to reach ``until`` in flight at once.
    ``missed``: (in flight at its deadline, its window in s) of a barrier this sweep's burst
    missed before: the window is then what that pace needs for ``until`` (with the margin), never
    shorter than the usual and at most ``HOLD_RETRY_MOST_S``."""
    usual = HOLD_LEAST_S + size * HOLD_PER_REQUEST_S
    if missed is None:
        return usual
    in_flight, window_s = missed
    if in_flight <= 0:  # nothing came in its window: no pace to go by
        return max(usual, HOLD_RETRY_MOST_S)
    needed = HOLD_LEAST_S + RETRY_PACE_MARGIN * until * window_s / in_flight
    return max(usual, min(needed, HOLD_RETRY_MOST_S))


def barrier(size: int, servers: int, held: int) -> int:
    """Requests a server holds its answers for in a sweep of ``size`` over ``servers``: its share of
    the burst (the driver sends to the hosts in turn), at least one more than the ``held`` sockets.

    Released at the first moment more were in flight than sockets held, a burst proved each
    idle socket handed out only for a client of one pool: of two sessions used in turn, one could
    then have had fewer in flight than it held, and the rest of the burst, answered at once, reused
    its newest connections, never its oldest (a loaded soak judged two healthy pools growth: 5 of 20
    held sockets idle through a burst of 40). With the whole burst in flight, each pool has its
    whole share of it in flight at once."""
    return max(size // servers, held + 1)


def stuck_servers(at_once: Sequence[int], held: Sequence[int], short: Sequence[int | None],
                  flat_ms: Sequence[int], window_s: float) -> list[int]:
    """Indexes of the servers where a missed sweep is stuck: its window ended with ``at_once`` no more than
    the ``held`` sockets, exactly as many as when the last conclusive sweep's window ended short (``short``;
    None: that burst was all in flight), and no request joined it in its last ``flat_ms`` ms, at least
    ``CAPPED_FLAT`` of its ``window_s``: a pool capped in flight, which a retry cannot get past."""
    return [i for i, (k, n, was, flat) in enumerate(zip(at_once, held, short, flat_ms))
            if k <= n and k == was and flat >= CAPPED_FLAT * window_s * 1000]


def drain_deadline(settings: Settings, longest_request_s: float = 0.0) -> float:
    """Seconds to wait for every request to finish."""
    # generous: requests are due after the delay; 5 s covers a loaded 2-core machine
    return 3 * max(settings.delay, longest_request_s) + 5.0


def tcp_count(run: Run, settings: Settings, result: ExperimentResult, progress: Progress, expect: str | None) -> None:
    schedule = make_schedule(settings.cycles, settings.period, settings.extra_max, settings.seed)
    result.schedule = schedule.as_dict()
    residuals: list[int] = []
    peaks: list[int] = []
    trend = None
    snap = None

    def cycle_end() -> None:
        run.recorder.request("cycle_end")

    for rnd in range(1, settings.max_rounds + 1):
        run.driver.replay(schedule, rnd, cycle_end)
        run.drain(drain_deadline(settings))
        if run.tracker.failed == run.tracker.started:
            raise ExperimentError(f"nothing measured: every request failed ({run.tracker.failed}); "
                                  f"the first: {run.tracker.first_error}")
        if rnd == 1:
            run.confirm_traffic()  # a client that never reaches the server is told so after one round, not three
            multiplexed = any(server.stats()["http2_connections"] for server in run.servers)
        sample, snap = run.settle("round_end")
        residuals.append(sample.held)
        peaks.append(run.tracker.peak)
        result.rounds.append({"round": rnd, "requests": schedule.requests, "residual": sample.held,
                              "established": sample.established, "close_wait": sample.close_wait,
                              "time_wait": sample.time_wait, "peak_in_flight": run.tracker.peak,
                              **({"residual_by_host": dict(zip(run.hosts, sample.held_by_host)),
                                  # each host's own server: the most it ever had in flight at once (from its accept)
                                  "peak_in_flight_by_host": {host: server.stats()["peak_in_flight"]
                                                             for host, server in zip(run.hosts, run.servers)}}
                                 if run.hosts else {})})
        held = f"{sample.held} sockets kept" + (f", {sample.close_wait} of them in CLOSE_WAIT" if sample.close_wait else "")
        progress(f"round {rnd}: {schedule.requests} requests, {held} (peak {run.tracker.peak} in flight)")
        if rnd >= settings.rounds_for(run.counter.exact and not multiplexed):
            trend = judge_trend(residuals, peaks, schedule.requests, final=rnd == settings.max_rounds)
            if trend.verdict != UNDECIDED:
                break
    assert trend is not None and snap is not None
    # the rounds' own figures: churn and the variants' checks speak of the schedule, not of the sweeps
    tally, churn = run.tally(), run.churn(snap.time_wait)
    started, failed, errors = run.tracker.started, run.tracker.failed, run.tracker.errors.copy()
    sweeps, exact_check = _sweep(run, settings, progress, trend.verdict, multiplexed)
    checks: list[Check] = []
    cycle_ends = [s.held for s in run.recorder.samples if s.label in ("cycle_end", "round_end")]
    if isinstance(run.client, FaultyClient):
        if not failed:
            # tolerance 0: the faulty client never closes a socket, so nothing it holds can fall
            # (a socket the server closed is still held, in CLOSE_WAIT); a failed request's can
            checks.append(check_never_falls("count never falls", cycle_ends))
        # tolerance 0: each request's session opens exactly one socket and keeps it, unless the
        # request failed (urllib3 closes a connection that errs)
        checks.append(check_equals("keeps every socket", snap.established + snap.close_wait, started - failed, 0,
                                   "held (ESTABLISHED + CLOSE_WAIT) after the last round vs requests that succeeded"))
    if isinstance(run.client, FixedClient):
        cap = run.client.idle_cap(len(run.servers))
        # allowance = the idle cap exactly: the in-flight peak covers the whole scan and a
        # connection counts as in flight from before it opens until after it is pooled or closed
        checks.append(check_bounded("in flight + idle cap",
                                    ((s.t, s.established, s.in_flight_peak) for s in run.recorder.samples), cap))
        checks.append(check_at_most("idle cap once idle", max(residuals), cap, "most ESTABLISHED after a round"))
    if sweeps is not None:
        snap = run.settle("after_sweeps")[1]
    result.sockets_left = list(snap.sockets)
    figures = RoundsFigures(residuals=residuals,
                            max_established=max((s.established for s in run.recorder.samples), default=0),
                            exact_check=exact_check, sweep_requests=run.tracker.started - started,
                            sweep_failed=run.tracker.failed - failed,
                            sweep_errors=dict(run.tracker.errors - errors),  # a Counter's: those that rose
                            abandoned=[{"local_port": a.local_port, "state": a.state, "idle_ms": a.idle_ms}
                                       for a in sweeps.abandoned] if sweeps is not None else None,
                            **tally, **churn)
    result.figures = figures
    if run.hosts:
        checks += _per_host_checks(run, result, figures, schedule.requests, peaks)
    result.verdict = combine(expect, trend, checks + churn_gate(settings.max_churn, figures.new_connections_per_request),
                             sweeps)


def _sweep(run: Run, settings: Settings, progress: Progress, trend: str,
           multiplexed: bool = False) -> tuple[Sweeps | None, str]:
    """Bursts of concurrent requests through the client, each larger than all it holds,
    until a socket is proved abandoned (held, no byte through a burst) or the
    requests sent reach ``settings.budget``; at least one. Returns the sweeps'
    finding (None when none ran) and a line saying why the exact check ran or not."""
    if not run.counter.exact:
        return None, (f"off: the {settings.sampler} sampler cannot read tcp_info (netlink can); "
                      "judged by rounds alone")
    if multiplexed:  # its proof rests on a pool handing out every idle connection before it opens another
        return None, ("off: the client spoke HTTP/2, whose pool may carry every request on one connection and "
                      "leave another idle; judged by rounds alone")
    if trend == GROWTH:
        return None, "not needed: the rounds already show growth"
    abandoned: list = []
    sweeps, burst, tested = 0, 0, run.tracker.started
    conclusive, retried, rechecked, to_share = 0, False, False, False
    misses: list[tuple[int, float]] | None = None  # per server, of the missed sweep: (in flight at its deadline, window)
    proved = tested  # the requests the last conclusive sweep tested
    peak = run.tracker.peak  # the rounds' own: a sweep's burst is not what the client needs
    # A sweep whose window ended short with k in flight, after which the pool held k or more, is followed by
    # another all the same: a pool capped in flight at k (aiohttp's limit_per_host) looks so, but so does a pool
    # merely slow to start its burst on a loaded machine, whose later requests reused the k connections once
    # answered (a loaded soak: 13 of 184 in flight, then 14 held, of a client leaking every 50th request; its
    # next sweep, not sent, would have found the leaks of this one). Only time tells them apart: the next
    # sweep. Missed with exactly as many in flight as before (``short``, per server: in flight when the last
    # conclusive sweep's window ended short; None where its burst was all in flight), and with no request joining
    # it for the second half of its window (CAPPED_FLAT), it is stuck: not retried (0.45 s more for aiohttp-fixed,
    # not 1.2). A pool slow to start at a steady pace ends two like windows at the same count too (14 twice, 50
    # starts a second), but its requests come until the window's end.
    short: list[int | None] = [None] * len(run.servers)
    short_from = 0  # the sweep ``short`` is of
    while True:
        before = run.socket_info()
        held = [len(b) for b in before]
        reach = sweep_size(sum(held), peak, SWEEP_LEAST)  # enough to hand out every idle socket
        # the first sweep spends the budget but for one more reach; later ones only reach
        size = min(SWEEP_MOST, max(reach, settings.budget - run.tracker.started - reach))
        # a retry's window: what the slowest server's pace in the missed sweep needs for its barrier. A pool capped
        # in flight misses again, having lost at most HOLD_RETRY_MOST_S: its held answers come at the window's end
        # (SWEEP_THEN_S), within a read timeout (held for the window and then the delay, past a fixed variant's 1 s,
        # a loaded soak's aiohttp-fixed requests timed out, then waited on its connector for good)
        shares = [barrier(size, len(run.servers), n) for n in held]
        most_s = max(hold_window_s(size, share if to_share else n + 1, miss)
                     for n, share, miss in zip(held, shares, misses or [None] * len(held)))
        reached_before = [server.stats()["holds_reached"] for server in run.servers]
        failed_before = run.tracker.failed
        with run.driver.burst(size) as ready:  # its threads started before the barrier's clock starts
            for server, share in zip(run.servers, shares):
                # the server holds its answers until its share of the burst is all in flight at once (the burst's
                # requests go to the hosts in turn), or the window ends with more in flight than sockets held:
                # that moment is the proof; after it, the burst's answers need not wait the delay (SWEEP_THEN_S)
                server.hold(share, most_s, SWEEP_THEN_S)
            tested = run.tracker.started  # the requests whose sockets this sweep tests
            run.recorder.sample("sweep_start")  # the report shades sweeps: the harness's burst, not the client's
            ready.go()
        run.drain(drain_deadline(settings, most_s + settings.delay))
        run.recorder.sample("sweep_end")
        after = run.socket_info()
        sweeps = sweeps + 1
        failed = run.tracker.failed - failed_before  # its own: a failed request is out of the burst at once
        stats = [server.stats() for server in run.servers]
        whole = [st["holds_reached"] != r for st, r in zip(stats, reached_before)]  # its share all in flight at once
        # the most in flight at once: its whole share, or as many as there were when its window ended
        at_once = [share if w else st["in_flight_at_miss"] for st, share, w in zip(stats, shares, whole)]
        missed = [f"{server.host}:{server.port} had {k} of {n + 1}"
                  for server, k, n in zip(run.servers, at_once, held) if k <= n]
        if missed:  # not concurrent enough to prove anything: a pool capped at what it holds, say
            stuck = [f"{run.servers[i].host}:{run.servers[i].port} had {at_once[i]} again, as when sweep "
                     f"{short_from}'s window ended, none more in its last {stats[i]['flat_at_miss_ms'] / 1000:.2f} s"
                     for i in stuck_servers(at_once, held, short, [st["flat_at_miss_ms"] for st in stats], most_s)]
            again = not retried and not stuck  # once a run, whichever sweep it is
            progress(f"sweep {sweeps}: {size} requests" + (f" ({failed} failed)" if failed else "")
                     + f", but {', '.join(missed)} in flight at once in {most_s:.2f} s: proves nothing"
                     + ("; once more" if again else "")
                     + (f"; {', '.join(stuck)}: a pool capped in flight, not tried again" if stuck else ""))
            if again:  # a loaded machine can be slow to start a burst; the second finds its connections open
                retried, to_share = True, False
                misses = [(k, most_s) for k in at_once]
                continue
            if conclusive == 0:
                why = FAILED if failed and size - failed <= sum(held) else FEWER_THAN_HELD
                return judge_sweeps([], sweeps, size, tested, inconclusive=", ".join(missed), why=why), "on"
            tested = proved  # what the earlier sweeps proved stands
            break
        found = [a for b, c in zip(before, after) for a in abandoned_through(b, c)]
        if found and not all(whole):
            # more in flight than held proves every idle socket handed out only for a client of one pool: of two
            # sessions used in turn, one slow to start its requests, the other's share could be all in flight while
            # the slow one's was not, leaving its oldest idle sockets out (a loaded soak: 2 of 20 held sockets idle,
            # 28 of 40 requests in flight when the window ended). No socket found is a finding whatever the pools.
            partial = [f"{server.host}:{server.port} had {k} of {share}"
                       for server, k, share, w in zip(run.servers, at_once, shares, whole) if not w]
            again = not rechecked  # once a run, as a miss's retry
            progress(f"sweep {sweeps}: {size} concurrent requests, {len(found)} of {sum(held)} held sockets received "
                     f"nothing, but {', '.join(partial)} in flight at once in {most_s:.2f} s: proves nothing"
                     + ("; once more" if again else ""))
            if again:  # the retry's window is fitted to that pace for the whole burst
                rechecked, to_share = True, True
                misses = [(k, most_s) for k in at_once]
                continue
            if conclusive == 0:
                return judge_sweeps([], sweeps, size, tested, inconclusive=", ".join(partial), why=PARTIAL), "on"
            tested = proved  # what the earlier sweeps proved stands
            break
        conclusive += 1
        proved = tested
        short, short_from = [None if w else k for k, w in zip(at_once, whole)], sweeps
        burst = size if found else max(burst, size)
        said = "all" if all(whole) else str(sum(at_once))
        progress(f"sweep {sweeps}: {size} concurrent requests ({said} in flight at once), {len(found)} of "
                 f"{sum(held)} held sockets received nothing")
        abandoned += found
        if abandoned or run.tracker.started >= settings.budget:
            break
    return judge_sweeps(abandoned, sweeps, burst, tested), "on"


def _per_host_checks(run: Run, result: ExperimentResult, figures: RoundsFigures, requests_per_round: int,
                     peaks: list[int]) -> list[Check]:
    """Every host judged on its own; the fixed client's caps checked per host and in total."""
    by_host = {host: [r["residual_by_host"][host] for r in result.rounds] for host in run.hosts}
    # what explains a host's rise is what that host had in flight: its server's peak, bounded by the whole
    # client's (the server counts from its accept, which a loaded server may make late). The whole client's
    # alone once explained a leak away: under load its peak rose 15 -> 23 between rounds, as much as one
    # host's residual rose (9 -> 17, every request kept), so that host was judged a plateau (a soak).
    host_peaks = {host: [min(whole, r["peak_in_flight_by_host"][host]) for whole, r in zip(peaks, result.rounds)]
                  for host in run.hosts}
    share = max(1, requests_per_round // len(run.hosts))
    # final=True: the rounds are over
    trends = {host: judge_trend(residuals, host_peaks[host], share, final=True) for host, residuals in by_host.items()}
    figures.residuals_by_host = by_host
    figures.verdict_by_host = {host: t.verdict for host, t in trends.items()}
    checks: list[Check] = []
    expected = GROWTH if isinstance(run.client, FaultyClient) else PLATEAU if isinstance(run.client, FixedClient) else None
    if expected is not None:
        wrong = {h: f"{t.verdict} ({' -> '.join(map(str, by_host[h]))})" for h, t in trends.items() if t.verdict != expected}
        checks.append(Check(f"{expected} on every host", not wrong,
                            f"hosts judged otherwise: {wrong}" if wrong else
                            "; ".join(f"{h}: {' -> '.join(map(str, r))}" for h, r in by_host.items())))
    if isinstance(run.client, FixedClient):
        cap_host, cap_total = run.client.settings.max_idle_per_host, run.client.settings.max_idle_total
        most_host = max(max(r) for r in by_host.values())
        most_total = max(r["residual"] for r in result.rounds)
        # tolerance 0: after a round nothing is in flight, so what is open is idle and the caps bind exactly
        checks.append(check_at_most("idle per host", most_host, cap_host, "most idle on one host after a round"))
        checks.append(check_at_most("idle in total", most_total, cap_total, "most idle on all hosts after a round"))
    return checks


def persistent_connections(run: Run, settings: Settings, result: ExperimentResult, progress: Progress,
                           expect: str | None) -> None:
    for i in range(PERSISTENT_REQUESTS):
        run.driver.fire()
        run.drain(drain_deadline(settings))
        run.recorder.sample("request_done")
    progress(f"{PERSISTENT_REQUESTS} requests sent one at a time")
    sample, snap = run.settle("end")
    figures = PersistentFigures(**run.tally(), **run.churn(sample.time_wait))
    new = figures.new_connections
    checks = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: a new session per request cannot reuse anything
        checks.append(check_equals("a connection per request", new, PERSISTENT_REQUESTS, 0, "new connections"))
    if isinstance(run.client, FixedClient):
        # tolerance 0: with one request at a time the one pooled connection serves them all
        checks.append(check_equals("one connection reused", new, 1, 0, "new connections"))
    figures.persistent = new < PERSISTENT_REQUESTS
    result.figures = figures
    result.sockets_left = list(snap.sockets)
    result.verdict = combine(None, None, checks)


def _warm_up(run: Run, settings: Settings) -> int:
    for _ in range(WARM_UP_REQUESTS):
        run.driver.fire()
    run.drain(drain_deadline(settings))
    sample, _ = run.settle("warmed_up")
    return sample.established


def idle_handling(run: Run, settings: Settings, result: ExperimentResult, progress: Progress,
                  expect: str | None) -> None:
    idle_before = _warm_up(run, settings)
    went_idle = run.tracker.burst_first_end or run.tracker.idle_since  # the first pooled connection went idle
    # the window in which the fixed client must have closed them all: past it, what is open stays open
    window = settings.idle_timeout + settings.sample_interval + IDLE_CLOSE_SLACK_S + IDLE_EARLY_SLACK_S
    progress(f"{idle_before} sockets idle; watching {window:.2f} s with no traffic")
    last = run.watch(lambda s: s.established == 0, window - (time.monotonic() - went_idle),
                     settings.sample_interval, "idle")
    # the first sample that saw none left open: its time is an upper estimate of the close
    closed_after = run.recorder.t0 + last.t - went_idle if last.established == 0 else None
    if last.established and not isinstance(run.client, FixedClient):
        # keep watching the whole window: did anything close at all?
        remaining = window - (time.monotonic() - went_idle)
        if remaining > 0:
            last = run.watch(lambda s: False, remaining, settings.sample_interval, "idle")
    idle = dict(idle_before=idle_before, idle_after=last.established, window_s=round(window, 3),
                idle_timeout_s=settings.idle_timeout,
                closed_after_s=round(closed_after, 3) if closed_after is not None else None)
    checks = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: every warm-up request kept its own session and socket, and nothing closes them
        checks.append(check_equals("keeps idle sockets", idle_before, WARM_UP_REQUESTS, 0, "idle sockets after the burst"))
        checks.append(check_equals("never closes idle", last.established, idle_before, 0,
                                   f"ESTABLISHED after {window:.2f} s without traffic"))
    if isinstance(run.client, FixedClient):
        cap = run.client.idle_cap_per_host
        checks.append(check_at_most("idle cap", idle_before, cap, "idle sockets after the burst"))
        early = settings.idle_timeout - IDLE_EARLY_SLACK_S
        late = settings.idle_timeout + settings.sample_interval + IDLE_CLOSE_SLACK_S
        if closed_after is None:
            checks.append(Check("idle timeout", False, f"{last.established} idle sockets still open after {window:.2f} s"))
        else:
            checks.append(Check("idle timeout", early <= closed_after <= late,
                                f"all idle sockets closed {closed_after:.3f} s after going idle "
                                f"(expected between {early:.2f} and {late:.2f} s)"))
    result.figures = IdleFigures(**idle, **run.tally(), **run.churn(last.time_wait))
    result.sockets_left = list(run.recorder.last.sockets if run.recorder.last else ())
    result.verdict = combine(None, None, checks)


def close_on_error(run: Run, settings: Settings, result: ExperimentResult, progress: Progress,
                   expect: str | None, failure: str = "reset") -> None:
    before = _warm_up(run, settings)
    if failure == "reset":
        bad_url, longest = run.server.url + "?fail=reset", settings.delay
    elif failure == "timeout":
        read_timeout = getattr(getattr(run.client, "settings", None), "read_timeout", None)
        if read_timeout is None:
            raise ExperimentError("the timeout failure needs a client with a read timeout (the fixed variant)")
        bad_url, longest = run.server.url + f"?delay={read_timeout + 1.0}", read_timeout
    else:
        raise ExperimentError(f"unknown failure {failure!r}: use reset or timeout")
    run.driver.fire(bad_url)
    run.drain(drain_deadline(settings, longest))
    if run.tracker.failed != 1:
        raise ExperimentError(f"the {failure} request was meant to fail and did not ({run.tracker.failed} failures)")
    after, snap = run.settle("after_error")
    if failure == "timeout":  # the server learns of the hang-up a moment after the client gives up
        run.wait_server(lambda d: d["hung_up_early"] >= 1, deadline_s=2.0, interval=settings.sample_interval)
    progress(f"{before} sockets idle before the {failure}, {after.established} after")
    checks = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: the failed request's own socket is gone (reset); the others stay untouched
        checks.append(check_equals("nothing closed on error", after.established, before, 0, "ESTABLISHED after the error"))
    if isinstance(run.client, FixedClient):
        # tolerance 0: every idle connection is closed and the failed one was dropped by urllib3
        checks.append(check_equals("idle closed on error", after.established, 0, 0, "ESTABLISHED after the error"))
        run.driver.fire()
        run.drain(drain_deadline(settings))
        recovered = run.tracker.failed == 1
        checks.append(Check("recovers", recovered, "the next request succeeded" if recovered else
                            f"the next request failed: {run.tracker.first_error}"))
    result.figures = CloseOnErrorFigures(failure=failure, idle_before=before, after_error=after.established,
                                         **run.tally(), **run.churn(snap.time_wait))
    result.sockets_left = list(snap.sockets)
    result.verdict = combine(None, None, checks)
