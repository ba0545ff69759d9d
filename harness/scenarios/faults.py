"""Scenarios against a server that misbehaves on purpose (``harness.server`` fault flags).

Faults that a round of the schedule survives (the server closing idle
connections, resetting or truncating every N-th answer) run as ``tcp_count``;
these two need their own shape:

* ``hang``: the server never answers every ``HANG_EVERY``-th request. A client
  without a read timeout waits forever, holding the socket; one with a timeout
  gives up, closes its idle connections, and the next request works.
* ``stalled_handshake`` (HTTPS, ``--tls``): the server never answers the ClientHello of
  the next ``STALLED`` connections. A client without timeouts waits in the handshake for
  ever, holding the socket; one with a connect timeout gives up, closes, and recovers.
* ``stop_accepting``: the server closes its listener after ``STOP_AFTER``
  answers. A client that opens a connection per request fails from then on; one
  that reuses its pooled connection goes on working.
"""
from __future__ import annotations

import time

from ..clients import FaultyClient, FixedClient
from ..driving import ExperimentError, ExperimentResult, HangFigures, Progress, Run, StopAcceptingFigures
from ..judging import Check, check_at_most, check_equals, combine
from ..options import Settings
from ..server import FAULTS

HANG_EVERY = 5  # start the server with fault="hang", every=HANG_EVERY
HANGING = next(f.counter for f in FAULTS if f.name == "hang")  # the /stats gauge of requests never answered
HANG_REQUESTS = 10  # concurrent: 2 of them hang
STALLED = 2  # TLS handshakes the server stalls, of the next HANG_REQUESTS connections
STOP_AFTER = 2  # start the server with stop_accepting_after=STOP_AFTER
SEQUENTIAL_REQUESTS = 5  # one at a time: 3 of them after the listener closed
OBSERVE_SLACK_S = 1.0  # beyond the fixed client's read timeout: it has given up by then, even on a loaded machine


def _wait_hanging(run: Run, target: int, settings: Settings, deadline_s: float = 2.0) -> int:
    """The server's hanging requests, polled until ``target`` or the deadline."""
    end = time.monotonic() + deadline_s
    hanging = run.server.stats()[HANGING]
    while hanging != target and time.monotonic() < end and not run.stop_event.wait(settings.sample_interval):
        hanging = run.server.stats()[HANGING]
    return hanging


def hang(run: Run, settings: Settings, result: ExperimentResult, progress: Progress, expect: str | None) -> None:
    for _ in range(HANG_REQUESTS):
        run.driver.fire()
    hung = HANG_REQUESTS // HANG_EVERY
    read_timeout = getattr(getattr(run.client, "settings", None), "read_timeout", 0.0)
    window = max(settings.delay, read_timeout) + OBSERVE_SLACK_S
    progress(f"{HANG_REQUESTS} requests, every {HANG_EVERY}th never answered; watching {window:.1f} s")
    run.tracker.wait_idle(window)
    still = run.tracker.current
    sample, snap = run.settle("after_hang")
    checks: list[Check] = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: no timeout, and the server never answers them: they wait for ever
        checks.append(check_equals("hung requests never end", still, hung, 0, f"requests in flight after {window:.1f} s"))
        # tolerance 0: every answered request's session kept its socket, and each hung one holds its own
        checks.append(check_equals("sockets held", sample.held, HANG_REQUESTS, 0, "held sockets"))
    if isinstance(run.client, FixedClient):
        checks.append(check_equals("gives up on hung requests", still, 0, 0, f"requests in flight after {window:.1f} s"))
        # tolerance 0: exactly the hung ones fail, each with a read timeout
        checks.append(check_equals("hung requests fail", run.tracker.failed, hung, 0, "failed requests"))
        checks.append(check_at_most("idle closed on error", sample.held, run.client.idle_cap_per_host, "held sockets"))
        # the client hung up; the server notices at its next read (bounded wait)
        hanging = _wait_hanging(run, 0, settings)
        checks.append(check_equals("the server saw it give up", hanging, 0, 0, "requests still hanging at the server"))
        run.driver.fire()  # the 11th: answered
        run.drain(window)
        recovered = run.tracker.failed == hung
        checks.append(Check("recovers", recovered, "the next request succeeded" if recovered else
                            f"the next request failed too: {run.tracker.first_error}"))
    result.figures = HangFigures(hung_requests=hung, still_in_flight=still, held=sample.held,
                                 window_s=round(window, 2), **run.tally())
    result.sockets_left = list(snap.sockets)
    result.verdict = combine(None, None, checks)


def stalled_handshake(run: Run, settings: Settings, result: ExperimentResult, progress: Progress,
                      expect: str | None) -> None:
    if run.server.tls is None:
        raise ExperimentError("stalled_handshake stalls TLS handshakes: run it over HTTPS (--tls, tls=on)")
    run.server.stall_handshakes(STALLED)
    for _ in range(HANG_REQUESTS):  # concurrent, on new connections: the first STALLED to arrive stall
        run.driver.fire()
    connect_timeout = getattr(getattr(run.client, "settings", None), "connect_timeout", 0.0)
    window = max(settings.delay, connect_timeout) + OBSERVE_SLACK_S
    progress(f"{HANG_REQUESTS} requests, the first {STALLED} TLS handshakes never answered; watching {window:.1f} s")
    run.tracker.wait_idle(window)
    still = run.tracker.current
    sample, snap = run.settle("after_stall")
    checks: list[Check] = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: no timeout, and the server never answers their handshakes: they wait for ever
        checks.append(check_equals("stalled handshakes never end", still, STALLED, 0,
                                   f"requests in flight after {window:.1f} s"))
        # tolerance 0: every answered request's session kept its socket, and each stalled one holds its own
        checks.append(check_equals("sockets held", sample.held, HANG_REQUESTS, 0, "held sockets"))
    if isinstance(run.client, FixedClient):
        checks.append(check_equals("gives up on stalled handshakes", still, 0, 0,
                                   f"requests in flight after {window:.1f} s"))
        # tolerance 0: exactly the stalled ones fail, each with a connect timeout
        checks.append(check_equals("stalled handshakes fail", run.tracker.failed, STALLED, 0, "failed requests"))
        checks.append(check_at_most("idle closed on error", sample.held, run.client.idle_cap_per_host, "held sockets"))
        run.driver.fire()  # the next: a handshake answered
        run.drain(window)
        recovered = run.tracker.failed == STALLED
        checks.append(Check("recovers", recovered, "the next request succeeded" if recovered else
                            f"the next request failed too: {run.tracker.first_error}"))
    stalled = run.server.stats()["tls_stalled"]
    # tolerance 0: the server stalled exactly the handshakes it was asked to, no more (its own count)
    checks.append(check_equals("handshakes stalled", stalled, STALLED, 0, "handshakes the server stalled"))
    result.figures = HangFigures(hung_requests=STALLED, still_in_flight=still, held=sample.held,
                                 window_s=round(window, 2), **run.tally())
    result.sockets_left = list(snap.sockets)
    result.verdict = combine(None, None, checks)


def stop_accepting(run: Run, settings: Settings, result: ExperimentResult, progress: Progress,
                   expect: str | None) -> None:
    deadline = 3 * settings.delay + 5.0  # generous: each request is due after the delay
    for _ in range(SEQUENTIAL_REQUESTS):
        run.driver.fire()
        run.drain(deadline)
    progress(f"{SEQUENTIAL_REQUESTS} requests one at a time; the server stopped accepting after {STOP_AFTER}")
    sample, snap = run.settle("end")
    result.figures = StopAcceptingFigures(held=sample.held, **run.tally())
    after_stop = SEQUENTIAL_REQUESTS - STOP_AFTER
    checks: list[Check] = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: every request after the listener closed needed a new connection, refused
        checks.append(check_equals("fails once refused", run.tracker.failed, after_stop, 0, "failed requests"))
        if run.tracker.failed and "ConnectionError" not in run.tracker.errors:
            raise ExperimentError(f"expected connection errors, got {run.tracker.errors}")
    if isinstance(run.client, FixedClient):
        # tolerance 0: its one pooled connection serves every request, the listener is not needed
        checks.append(check_equals("keeps working", run.tracker.failed, 0, 0, "failed requests"))
        checks.append(check_equals("one connection reused", sample.held, 1, 0, "held sockets"))
    result.sockets_left = list(snap.sockets)
    result.verdict = combine(None, None, checks)
