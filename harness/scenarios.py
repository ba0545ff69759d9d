"""The four rows of the seed's comparison table, each measured by one scenario.

* ``persistent_connections``: one request at a time; new connections per request.
* ``idle_handling``: after a burst, no traffic; are idle connections closed?
* ``close_on_error``: after a failed request, are idle connections closed?
* ``tcp_count``: rounds of the schedule; does the kept socket count grow?

``measure()`` runs one scenario on one target and always writes what it
measured, marked incomplete if it was interrupted. ``idle_across_hosts()``
checks idle caps that span several servers.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from . import fault_scenarios
from .clients import (
    CATALOG,
    FaultyClient,
    FixedClient,
    expectation,
    resolve,
    target_name,
)
from .driver import Driver, InFlight
from .experiment import ExperimentError, ExperimentResult, Progress, Run
from .options import Settings
from .results import write_result
from .sampler import SocketCounter
from .schedule import make_schedule
from .server_process import ServerProcess
from .verdict import (
    GROWTH,
    PLATEAU,
    UNDECIDED,
    Check,
    check_at_most,
    check_bounded,
    check_equals,
    check_never_falls,
    combine,
    judge_trend,
)

PERSISTENT_REQUESTS = 3  # one at a time: a pooling client needs exactly one connection for all
WARM_UP_REQUESTS = 4  # concurrent, so a pool capped at 2 idle must close some and keep 2
# The last pooled connection went idle when its own request ended, a few ms after
# the first (tens under load); the reaper closes it when its timer fires, and the
# harness sees that at its next sample (sample interval) after a psutil scan
# (~12 ms, more under load). 0.3 s covers all of that on a loaded 2-core machine.
IDLE_CLOSE_SLACK_S = 0.3
# Idle time is counted from the first warm-up request's end; its connection went
# back to the pool (and its idle clock started) less than a millisecond before.
# 0.05 s is that, plus the resolution of two consecutive samples' timestamps.
IDLE_EARLY_SLACK_S = 0.05


def default_expectation(target: object) -> str | None:
    """The verdict a catalog variant must get; None for anything else."""
    variant = CATALOG.get(target) if isinstance(target, str) else None
    return expectation(variant.kind) if variant else None


def _drain_deadline(settings: Settings, longest_request_s: float = 0.0) -> float:
    # generous: requests are due after the delay; 5 s covers a loaded 2-core machine
    return 3 * max(settings.delay, longest_request_s) + 5.0


def _churn(run: Run, result: ExperimentResult, last_time_wait: int) -> None:
    delta = run.server_delta()
    requests = run.tracker.started
    new = delta["connections_accepted"]
    result.figures.update(
        requests=requests,
        failed=run.tracker.failed,
        errors=dict(run.tracker.errors),
        first_error=run.tracker.first_error,
        peak_in_flight=run.tracker.peak,
        new_connections=new,
        new_connections_per_request=round(new / requests, 4) if requests else 0.0,
        time_wait=last_time_wait,
        time_wait_per_request=round(last_time_wait / requests, 4) if requests else 0.0,
        hung_up_early=delta["hung_up_early"],
    )


def churn_gate(settings: Settings, figures: dict) -> list[Check]:
    """The optional second gate: new connections per request at most ``--max-churn``."""
    if settings.max_churn is None:
        return []
    return [check_at_most("churn", figures["new_connections_per_request"], settings.max_churn,
                          "new connections per request")]


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
        run.drain(_drain_deadline(settings))
        if run.tracker.failed == run.tracker.started:
            raise ExperimentError(f"every request failed ({run.tracker.failed}), so there is nothing to judge; "
                                  f"the first: {run.tracker.first_error}")
        sample, snap = run.settle("round_end")
        residuals.append(sample.held)
        peaks.append(run.tracker.peak)
        result.rounds.append({"round": rnd, "requests": schedule.requests, "residual": sample.held,
                              "established": sample.established, "close_wait": sample.close_wait,
                              "time_wait": sample.time_wait, "peak_in_flight": run.tracker.peak,
                              **({"residual_by_host": dict(zip(run.hosts, sample.held_by_host))} if run.hosts else {})})
        held = f"{sample.held} sockets kept" + (f", {sample.close_wait} of them in CLOSE_WAIT" if sample.close_wait else "")
        progress(f"round {rnd}: {schedule.requests} requests, {held} (peak {run.tracker.peak} in flight)")
        if rnd >= settings.rounds:
            trend = judge_trend(residuals, peaks, schedule.requests, final=rnd == settings.max_rounds)
            if trend.verdict != UNDECIDED:
                break
    assert trend is not None and snap is not None
    checks: list[Check] = []
    cycle_ends = [s.held for s in run.recorder.samples if s.label in ("cycle_end", "round_end")]
    if isinstance(run.client, FaultyClient):
        if not run.tracker.failed:
            # tolerance 0: the faulty client never closes a socket, so nothing it holds can fall
            # (a socket the server closed is still held, in CLOSE_WAIT); a failed request's can
            checks.append(check_never_falls("count never falls", cycle_ends))
        # tolerance 0: each request's session opens exactly one socket and keeps it, unless the
        # request failed (urllib3 closes a connection that errs)
        checks.append(check_equals("keeps every socket", snap.established + snap.close_wait,
                                   run.tracker.started - run.tracker.failed, 0,
                                   "held (ESTABLISHED + CLOSE_WAIT) after the last round vs requests that succeeded"))
    if isinstance(run.client, FixedClient):
        cap = run.client.idle_cap(len(run.servers))
        # allowance = the idle cap exactly: the in-flight peak covers the whole scan and a
        # connection counts as in flight from before it opens until after it is pooled or closed
        checks.append(check_bounded("in flight + idle cap",
                                    ((s.t, s.established, s.in_flight_peak) for s in run.recorder.samples), cap))
        checks.append(check_at_most("idle cap once idle", max(residuals), cap, "most ESTABLISHED after a round"))
    result.sockets_left = [(s.local_port, s.state) for s in snap.sockets]
    result.figures["residuals"] = residuals
    result.figures["max_established"] = max((s.established for s in run.recorder.samples), default=0)
    _churn(run, result, snap.time_wait)
    if run.hosts:
        checks += _per_host_checks(run, result, schedule.requests, peaks)
    result.verdict = combine(expect, trend, checks + churn_gate(settings, result.figures))


def _per_host_checks(run: Run, result: ExperimentResult, requests_per_round: int, peaks: list[int]) -> list[Check]:
    """Every host judged on its own; the fixed client's caps checked per host and in total."""
    by_host = {host: [r["residual_by_host"][host] for r in result.rounds] for host in run.hosts}
    share = max(1, requests_per_round // len(run.hosts))
    # final=True: the rounds are over; the peak in flight is the whole client's, an upper bound for each host
    trends = {host: judge_trend(residuals, peaks, share, final=True) for host, residuals in by_host.items()}
    result.figures["residuals_by_host"] = by_host
    result.figures["verdict_by_host"] = {host: t.verdict for host, t in trends.items()}
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
        run.drain(_drain_deadline(settings))
        run.recorder.sample("request_done")
    progress(f"{PERSISTENT_REQUESTS} requests sent one at a time")
    sample, snap = run.settle("end")
    _churn(run, result, sample.time_wait)
    new = result.figures["new_connections"]
    checks = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: a new session per request cannot reuse anything
        checks.append(check_equals("a connection per request", new, PERSISTENT_REQUESTS, 0, "new connections"))
    if isinstance(run.client, FixedClient):
        # tolerance 0: with one request at a time the one pooled connection serves them all
        checks.append(check_equals("one connection reused", new, 1, 0, "new connections"))
    result.figures["persistent"] = new < PERSISTENT_REQUESTS
    result.sockets_left = [(s.local_port, s.state) for s in snap.sockets]
    result.verdict = combine(None, None, checks)


def _warm_up(run: Run, settings: Settings) -> int:
    for _ in range(WARM_UP_REQUESTS):
        run.driver.fire()
    run.drain(_drain_deadline(settings))
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
    result.figures.update(idle_before=idle_before, idle_after=last.established, window_s=round(window, 3),
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
    _churn(run, result, last.time_wait)
    result.sockets_left = [(s.local_port, s.state) for s in (run.recorder.last.sockets if run.recorder.last else ())]
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
    run.drain(_drain_deadline(settings, longest))
    if run.tracker.failed != 1:
        raise ExperimentError(f"the {failure} request was meant to fail and did not ({run.tracker.failed} failures)")
    after, snap = run.settle("after_error")
    if failure == "timeout":  # the server learns of the hang-up a moment after the client gives up
        run.wait_server(lambda d: d["hung_up_early"] >= 1, deadline_s=2.0, interval=settings.sample_interval)
    progress(f"{before} sockets idle before the {failure}, {after.established} after")
    result.figures.update(failure=failure, idle_before=before, after_error=after.established)
    checks = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: the failed request's own socket is gone (reset); the others stay untouched
        checks.append(check_equals("nothing closed on error", after.established, before, 0, "ESTABLISHED after the error"))
    if isinstance(run.client, FixedClient):
        # tolerance 0: every idle connection is closed and the failed one was dropped by urllib3
        checks.append(check_equals("idle closed on error", after.established, 0, 0, "ESTABLISHED after the error"))
        run.driver.fire()
        run.drain(_drain_deadline(settings))
        recovered = run.tracker.failed == 1
        checks.append(Check("recovers", recovered, "the next request succeeded" if recovered else
                            f"the next request failed: {run.tracker.first_error}"))
    _churn(run, result, snap.time_wait)
    result.figures["failed"] = run.tracker.failed
    result.sockets_left = [(s.local_port, s.state) for s in snap.sockets]
    result.verdict = combine(None, None, checks)


SCENARIOS: dict[str, Callable[..., None]] = {
    "persistent_connections": persistent_connections,
    "idle_handling": idle_handling,
    "close_on_error": close_on_error,
    "tcp_count": tcp_count,
    "hang": fault_scenarios.hang,
    "stop_accepting": fault_scenarios.stop_accepting,
}


def target_label(target: object) -> str:
    """A file-name-safe label for a target (a name, or a function)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in target_name(target))


def measure(
    scenario: str,
    target: str | Callable[[str], object],
    settings: Settings,
    server: ServerProcess | list[ServerProcess],
    *,
    expect: str | None = None,
    progress: Progress = lambda line: None,
    name: str | None = None,
    **kwargs,
) -> ExperimentResult:
    """Run one scenario on ``target`` against ``server``; write and return the result.

    Given several servers (``tcp_count`` only), the schedule's requests go to
    each in turn and every host is counted and judged on its own too. Results
    are written even when the run is interrupted, marked incomplete.
    """
    servers = server if isinstance(server, list) else [server]
    server = servers[0]
    if len(servers) > 1 and scenario != "tcp_count":
        raise ExperimentError(f"{scenario} runs against one server; only tcp_count takes several")
    client = resolve(target, settings.delay, settings.idle_timeout)
    result = ExperimentResult(name=name or f"{scenario}-{target_label(target)}", scenario=scenario, target=target_name(target),
                              settings=settings.as_dict(),
                              server={"host": server.host, "port": server.port, "pid": server.pid})
    started = time.monotonic()
    run = Run(client, servers, settings.sample_interval, settings.sampler)
    result.hosts = run.hosts
    try:
        with run:
            SCENARIOS[scenario](run, settings, result, progress, expect, **kwargs)
        result.complete = True
    except BaseException as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        result.samples = list(run.recorder.samples)
        try:
            run.close_client()
        finally:
            result.duration_s = time.monotonic() - started
            result.server_stderr = "\n".join(s.stderr_text() for s in servers)
            write_result(result, settings.results_path)
    return result


def idle_across_hosts(client: Callable[[str], object], settings: Settings, servers: list[ServerProcess],
                      per_host: int = WARM_UP_REQUESTS) -> dict[str, int]:
    """Send ``per_host`` concurrent requests to each server through ``client``,
    wait for them, and return its ESTABLISHED sockets per server URL; closes
    the client after.

    Proves cross-host caps such as the fixed client's 5 idle connections in total.
    """
    tracker, stop = InFlight(), threading.Event()
    try:
        drivers = [Driver(client, server.url, tracker, stop) for server in servers]
        for driver in drivers:
            for _ in range(per_host):
                driver.fire()
        if not tracker.wait_idle(_drain_deadline(settings)):
            raise ExperimentError(f"{tracker.current} requests still in flight")
        if tracker.failed:
            raise ExperimentError(f"{tracker.failed} requests failed: {tracker.first_error}")
        counters = [SocketCounter(s.host, s.port, s.own_ports, settings.sampler) for s in servers]
        return {server.url: counter.snapshot().established for server, counter in zip(servers, counters)}
    finally:
        stop.set()
        close = getattr(client, "close", None)
        if callable(close):
            close()


__all__ = ["GROWTH", "PLATEAU", "SCENARIOS", "default_expectation", "idle_across_hosts", "measure"]

