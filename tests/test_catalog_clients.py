"""The catalog's clients close what their docstrings say, and nothing else."""
from __future__ import annotations

import threading

import httpx
import pytest

from harness.clients.httpx_variants import HttpxFixed
from harness.clients.tuning import ClientTuning

from .waiting import wait_for

SLOW_S = 0.6  # the request that must survive: under its 1-s read timeout, and answered well after the failure


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_one_failure_closes_the_idle_not_the_requests_under_way(start_slow_server, scheme):
    """httpx-fixed: a failed request replaces the client; the old one is closed once its other requests end,
    not under them."""
    server = start_slow_server(delay=0.05, tls=scheme == "https")
    fixed = HttpxFixed(ClientTuning(read_timeout=1.0, ca_file=str(server.tls.ca) if server.tls else None))
    old = fixed.client
    outcome: list = []

    def slow() -> None:
        try:
            outcome.append(fixed(server.url + f"?delay={SLOW_S}"))
        except Exception as exc:  # noqa: BLE001  what cut it is the finding
            outcome.append(exc)

    worker = threading.Thread(target=slow)
    worker.start()
    try:
        wait_for(lambda: server.stats()["active_requests"], lambda n: n == 1)  # the slow request under way
        with pytest.raises(httpx.HTTPError):
            fixed(server.url + "?fail=reset")
        assert fixed.client is not old and not old.is_closed  # replaced; kept while the slow one runs
    finally:
        worker.join(timeout=10)
    assert outcome == [200], outcome
    assert old.is_closed  # closed once its last request ended
    fixed.close()
    assert fixed.client.is_closed
