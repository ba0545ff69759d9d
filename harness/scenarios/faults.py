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
from collections.abc import Callable

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


def _never_answered(run: Run, settings: Settings, progress: Progress, stuck: int, what: str, timeout: str,
                    said: str, label: str, server_saw: Callable[[], list[Check]] = list,
                    ) -> tuple[list[Check], HangFigures, list]:
    """``HANG_REQUESTS`` requests at once, ``stuck`` of them never answered (``what``: "hung requests"). A
    client without timeouts waits for ever, each holding its socket; one with ``timeout`` (its settings'
    ``read_timeout`` or ``connect_timeout``) gives up, closes its idle connections (``server_saw``: what the
    server must have noticed by then), and its next request works. Returns the checks, the figures and
    the sockets held at the end."""
    for _ in range(HANG_REQUESTS):
        run.driver.fire()
    limit = getattr(getattr(run.client, "settings", None), timeout, 0.0)
    window = max(settings.delay, limit) + OBSERVE_SLACK_S
    progress(f"{HANG_REQUESTS} requests, {said}; watching {window:.1f} s")
    run.tracker.wait_idle(window)
    still = run.tracker.current
    sample, snap = run.settle(label)
    checks: list[Check] = []
    if isinstance(run.client, FaultyClient):
        # tolerance 0: no timeout, and the server never answers them: they wait for ever
        checks.append(check_equals(f"{what} never end", still, stuck, 0, f"requests in flight after {window:.1f} s"))
        # tolerance 0: every answered request's session kept its socket, and each stuck one holds its own
        checks.append(check_equals("sockets held", sample.held, HANG_REQUESTS, 0, "held sockets"))
    if isinstance(run.client, FixedClient):
        checks.append(check_equals(f"gives up on {what}", still, 0, 0, f"requests in flight after {window:.1f} s"))
        # tolerance 0: exactly the stuck ones fail, each with its timeout
        checks.append(check_equals(f"{what} fail", run.tracker.failed, stuck, 0, "failed requests"))
        checks.append(check_at_most("idle closed on error", sample.held, run.client.idle_cap_per_host, "held sockets"))
        checks += server_saw()
        run.driver.fire()  # the next: answered
        run.drain(window)
        recovered = run.tracker.failed == stuck
        checks.append(Check("recovers", recovered, "the next request succeeded" if recovered else
                            f"the next request failed too: {run.tracker.first_error}"))
    figures = HangFigures(hung_requests=stuck, still_in_flight=still, held=sample.held, window_s=round(window, 2),
                          **run.tally())
    return checks, figures, list(snap.sockets)


def hang(run: Run, settings: Settings, result: ExperimentResult, progress: Progress, expect: str | None) -> None:
    hung = HANG_REQUESTS // HANG_EVERY

    def server_saw() -> list[Check]:  # the client hung up; the server notices at its next read (bounded wait)
        hanging = _wait_hanging(run, 0, settings)
        return [check_equals("the server saw it give up", hanging, 0, 0, "requests still hanging at the server")]

    checks, result.figures, result.sockets_left = _never_answered(
        run, settings, progress, hung, "hung requests", "read_timeout", f"every {HANG_EVERY}th never answered",
        "after_hang", server_saw)
    result.verdict = combine(None, None, checks)


def stalled_handshake(run: Run, settings: Settings, result: ExperimentResult, progress: Progress,
                      expect: str | None) -> None:
    if run.server.tls is None:
        raise ExperimentError("stalled_handshake stalls TLS handshakes: run it over HTTPS (--tls, tls=on)")
    run.server.stall_handshakes(STALLED)  # on new connections, the first STALLED to arrive stall
    checks, result.figures, result.sockets_left = _never_answered(
        run, settings, progress, STALLED, "stalled handshakes", "connect_timeout",
        f"the first {STALLED} TLS handshakes never answered", "after_stall")
    # tolerance 0: the server stalled exactly the handshakes it was asked to, no more (its own count)
    checks.append(check_equals("handshakes stalled", run.server.stats()["tls_stalled"], STALLED, 0,
                               "handshakes the server stalled"))
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
