"""The catalog's clients close what their docstrings say, and nothing else."""
from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import pytest

from harness.clients.httpx_variants import HttpxFixed
from harness.clients.tuning import ClientTuning

from .waiting import wait_for

# The request that must outlive the failure, its answer's delay (s): well after the failure on a quiet machine (0.6);
# where a loaded one answered it first (a soak's run, at a load average of 15), nothing was shown, so it is tried
# again at twice the delay, at most twice more. Its read timeout is 1 s above the delay.
SLOW_S = (0.6, 1.2, 2.4)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_one_failure_closes_the_idle_not_the_requests_under_way(start_slow_server, scheme):
    """httpx-fixed: a failed request replaces the client; the old one is closed once its other requests end,
    not under them."""
    for slow_s in SLOW_S:
        server = start_slow_server(delay=0.05, tls=scheme == "https")
        fixed = HttpxFixed(ClientTuning(read_timeout=slow_s + 1.0, ca_file=str(server.tls.ca) if server.tls else None))
        old = fixed.client
        outcome: list = []

        def slow() -> None:
            try:
                outcome.append(fixed(server.url + f"?delay={slow_s}"))
            except Exception as exc:  # noqa: BLE001  what cut it is the finding
                outcome.append(exc)

        worker = threading.Thread(target=slow)
        worker.start()
        try:
            wait_for(lambda: server.stats()["active_requests"], lambda n: n == 1)  # the slow request under way
            with pytest.raises(httpx.HTTPError):
                fixed(server.url + "?fail=reset")
            replaced, closed = fixed.client is not old, old.is_closed
            # read after: no answer sent yet (a reset is not one), so the slow request was under way at the reading
            under_way = server.stats()["requests_served"] == 0
        finally:
            worker.join(timeout=slow_s + 10)
        assert outcome == [200], outcome
        assert replaced
        assert old.is_closed  # closed once its last request ended
        fixed.close()
        assert fixed.client.is_closed
        if under_way:
            assert not closed  # kept while the slow one ran
            return
    pytest.fail(f"the slow request was answered before the failure was over at each delay, {SLOW_S} s")


def test_aiohttp_one_session_a_failure_strands_no_request_queued_on_it(start_slow_server):
    """aiohttp-fixed, one connection a host: the first request times out and retires the session;
    the two queued behind it on that session's connector still get their answers (closed at once,
    the session left them waiting for good: aiohttp never wakes them)."""
    import asyncio

    from harness.clients.aiohttp_variants import AiohttpFixed

    server = start_slow_server(delay=0.0)
    fixed = AiohttpFixed(ClientTuning(read_timeout=0.3, idle_timeout=30.0, max_in_flight_per_host=1))

    async def three() -> list:
        first = asyncio.ensure_future(fixed(server.url + "?delay=5"))  # past its 0.3 s read timeout
        queued = [asyncio.ensure_future(fixed(server.url)) for _ in range(2)]  # behind it, for the one connection
        try:  # 10 s: the queued ones are answered ~0.3 s in; stranded, they wait for ever
            return await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 10)
        finally:
            await fixed.aclose()

    results = asyncio.run(three())
    assert isinstance(results[0], TimeoutError) and results[1:] == [200, 200], results
    assert fixed.in_flight == {}  # the retired session was closed by its last request


# the seed's faulty client (a session a request) and its fixed one (one shared session); ids without the words
# "faulty" and "fixed", which `pytest -k` keeps for the experiments
@pytest.mark.parametrize("kind", ["session-a-request", "shared-session"])
def test_the_seeds_clients_take_no_proxy_from_the_environment(start_slow_server, monkeypatch, kind):
    """As the Go program's own ``http.Transport{}``, which sets no Proxy: a proxy named in the
    environment (here a loopback port nobody listens on) is not used; the request goes to the server."""
    import socket

    from harness.clients import FaultyClient
    from harness.clients.fixed import FixedClient

    server = start_slow_server(delay=0.0)
    with socket.socket() as nobody:
        nobody.bind(("127.0.0.1", 0))  # bound, never listening: a connect to it is refused
        proxy = f"http://127.0.0.1:{nobody.getsockname()[1]}"
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        client = FaultyClient() if kind == "session-a-request" else FixedClient()
        try:
            assert client(server.url) == 200
        finally:
            client.close()
    assert server.stats()["requests_served"] == 1


def test_an_async_target_has_what_a_client_imports_at_its_first_connection_loaded_when_made():
    """httpx's AsyncClient imports anyio's asyncio backend at its first connection; an AsyncTarget
    loads it when made, before a run measures anything. In a fresh process: this one may have it."""
    probe = ("import sys\nfrom harness.clients import AsyncTarget\n"
             "async def get(url): return 200\n"
             "names = ('httpcore._backends.anyio', 'anyio._backends._asyncio')\n"
             "before = [n in sys.modules for n in names]\n"
             "target = AsyncTarget(get)\ntarget.close()\n"
             "print(*before, *[n in sys.modules for n in names])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False", "True", "True"], done.stdout + done.stderr
