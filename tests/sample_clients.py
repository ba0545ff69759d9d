"""Clients that are not the harness's own variants, to check its judgement.

Each is a plain function that performs one request to the URL it is given,
as a user would bring one to ``python -m harness run module:function``.
Module-level state plays the part of a user's long-lived client objects.
"""
from __future__ import annotations

import asyncio
import http.client
import itertools
import socket
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

_kept: list = []  # what the leaky ones never let go of
_lock = threading.Lock()


def _keep(obj) -> None:
    with _lock:
        _kept.append(obj)


def release_all() -> None:
    with _lock:
        objs = list(_kept)
        _kept.clear()
    for obj in objs:
        for name in ("close", "clear"):
            if hasattr(obj, name):
                getattr(obj, name)()


def urllib3_pool_per_request(url: str) -> int:
    """Leak: a new urllib3 PoolManager per request, kept alive (the Go bug, in urllib3)."""
    pool = urllib3.PoolManager()
    _keep(pool)
    return pool.request("GET", url).status


_large = requests.Session()
_large.mount("http://", HTTPAdapter(pool_maxsize=100))


def requests_large_pool(url: str) -> int:
    """Healthy: one session whose pool keeps up to 100 idle connections per host."""
    return _large.get(url, timeout=10).status_code


_shared = requests.Session()
_counter = itertools.count()


def requests_leak_one_in_four(url: str) -> int:
    """Leak: every fourth request goes through a new session that is kept alive."""
    if next(_counter) % 4 == 0:
        session = requests.Session()
        _keep(session)
        return session.get(url, timeout=10).status_code
    return _shared.get(url, timeout=10).status_code


def http_client_closed(url: str) -> int:
    """Healthy, with churn: a new http.client connection per request, always closed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


_streaming = requests.Session()
_streaming.mount("http://", HTTPAdapter(pool_maxsize=100))


def requests_stream_unclosed(url: str) -> int:
    """Leak: streamed responses that are never read nor closed hold their connections."""
    response = _streaming.get(url, stream=True, timeout=10)
    _keep(response)
    return response.status_code


def urlopen_unclosed(url: str) -> int:
    """Leak: urlopen responses kept and never closed. urllib asks the server to
    close, so these sockets sit in CLOSE_WAIT, still held by the client."""
    response = urllib.request.urlopen(url, timeout=10)  # noqa: S310 (loopback test server)
    _keep(response)
    return response.status


async def _asyncio_get(url: str):
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET / HTTP/1.1\r\nHost: {parts.hostname}\r\n\r\n".encode())
    await reader.readuntil(b"ok\n")
    return writer


async def asyncio_connection_kept(url: str) -> int:
    """Leak, async: a connection per request that is never closed."""
    _keep(await _asyncio_get(url))
    return 200


async def asyncio_connection_closed(url: str) -> int:
    """Healthy, async: a connection per request, closed once answered."""
    writer = await _asyncio_get(url)
    writer.close()
    await writer.wait_closed()
    return 200


def always_fails(url: str) -> int:
    """Not a client at all: every call raises."""
    raise RuntimeError("client bug")


# Targets that never give the server anything to count: each must end in "nothing measured"
# (exit 3), never in a verdict, and never print a thread's traceback.
def no_request(url: str) -> int:
    """Returns at once, as if it had made its request."""
    return 200


def exits(url: str) -> None:
    raise SystemExit(4)


def interrupts(url: str) -> None:
    raise KeyboardInterrupt


class Abandoned(BaseException):
    """An exception outside Exception's tree, as some frameworks raise."""


def raises_base_exception(url: str) -> None:
    raise Abandoned("gave up")


# Rare leaks: healthy (one shared session) but for every N-th request, which leaks a session of its own.
# Every N-th, not one in N at random: a test of "found within the budget" must not be a lottery.
_count = itertools.count(1)
_shared_for_rare = requests.Session()


def _leak_every(n: int):
    def fetch(url: str) -> int:
        with _lock:
            nth = next(_count)
        if nth % n == 0:
            session = requests.Session()
            _keep(session)
            return session.get(url, timeout=10).status_code
        return _shared_for_rare.get(url, timeout=10).status_code

    fetch.__name__ = fetch.__qualname__ = f"leak_every_{n}"
    return fetch


leak_every_1, leak_every_10, leak_every_26 = _leak_every(1), _leak_every(10), _leak_every(26)
leak_every_50, leak_every_100, leak_every_200 = _leak_every(50), _leak_every(100), _leak_every(200)


# Healthy shapes the exact check must never call abandoned.
def _session_with_pool(size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=size)
    session.mount("http://", adapter)
    return session


_pool_of_one = _session_with_pool(1)
_pool_of_500 = _session_with_pool(500)
_two_pools = [_session_with_pool(10), _session_with_pool(10)]
_which_pool = itertools.count()


def pool_of_one(url: str) -> int:
    """A pool of one connection: every other concurrent request opens (and drops) its own."""
    return _pool_of_one.get(url, timeout=10).status_code


def pool_of_500(url: str) -> int:
    return _pool_of_500.get(url, timeout=10).status_code


capped_pool = requests.Session()
capped_pool.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=3, pool_block=True))


def capped_at_three(url: str) -> int:
    """A pool that blocks at 3 connections: never more than 3 requests in flight, so a sweep
    needing more than the 3 it holds can never be proved, however long it waits."""
    return capped_pool.get(url, timeout=10).status_code


ROUNDS_REQUESTS = 46  # the default schedule's first two rounds: 23 requests each
_fails_after_pool = _session_with_pool(10)
_calls = itertools.count(1)


def fails_after_the_rounds(url: str) -> int:
    """A pool of 10 whose every request after the first two rounds' fails before it is sent: the sweeps' do."""
    if next(_calls) > ROUNDS_REQUESTS:
        raise ConnectionRefusedError("refused by the client itself, after the rounds")
    return _fails_after_pool.get(url, timeout=10).status_code


capped_pool_of_thirty = requests.Session()
capped_pool_of_thirty.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=30, pool_block=True))


def capped_at_thirty(url: str) -> int:
    """A pool that blocks at 30 connections: a sweep's burst past the ~17 it holds after the
    rounds has 30 in flight at once (proved), and the pool then holds 30, past which no later
    burst can get."""
    return capped_pool_of_thirty.get(url, timeout=10).status_code


slow_start_pool = _session_with_pool(500)
_one_start_at_a_time = threading.Lock()
SLOW_START_S = 0.06  # each request's start as a starved machine makes it: ~17 a second, one after another


def slow_to_start(url: str) -> int:
    """A pool of 500 on a starved machine: its requests start one after another, 60 ms
    each (the wait stands for CPU it does not get), so a burst takes seconds to be in flight."""
    with _one_start_at_a_time:
        time.sleep(SLOW_START_S)
    return slow_start_pool.get(url, timeout=10).status_code


def two_pools(url: str) -> int:
    """Two separate sessions, used in turn."""
    with _lock:
        session = _two_pools[next(_which_pool) % 2]
    return session.get(url, timeout=10).status_code


def _two_pools_one_slow(start_s: float):
    """Two separate sessions used in turn, the second slow to start its requests (one after
    another, ``start_s`` each): in a burst, the first's are all in flight at once while the
    second's still trickle in."""
    pools = [_session_with_pool(10), _session_with_pool(10)]
    turns = itertools.count()
    one_start_at_a_time = threading.Lock()

    def two_pools_one_slow(url: str) -> int:
        with _lock:
            turn = next(turns) % 2
        if turn:
            with one_start_at_a_time:
                time.sleep(start_s)
        return pools[turn].get(url, timeout=10).status_code

    return two_pools_one_slow


# ~100 starts a second: a sweep's burst is all in flight within its window, on a quiet machine
two_pools_one_slow = _two_pools_one_slow(0.01)
# 25 a second: a sweep of 40 has ~8 of the slow session's 20 in flight when its usual 0.33-s window ends, fewer
# than the 10 it holds; ~18 in the retry's 0.75 s
two_pools_one_slower = _two_pools_one_slow(0.04)


def http10_close(url: str) -> int:
    """HTTP/1.0 without keep-alive: the server closes after each answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return int(data.split(b" ", 2)[1])


_aiohttp_default = None


async def aiohttp_default(url: str) -> int:
    """aiohttp with its defaults: one session, TCPConnector(limit=100)."""
    import aiohttp

    global _aiohttp_default
    if _aiohttp_default is None:
        _aiohttp_default = aiohttp.ClientSession()
    async with _aiohttp_default.get(url) as response:
        await response.read()
        return response.status


async def _close_aiohttp_default() -> None:
    if _aiohttp_default is not None:
        await _aiohttp_default.close()


aiohttp_default.aclose = _close_aiohttp_default  # AsyncTarget closes it on its loop
