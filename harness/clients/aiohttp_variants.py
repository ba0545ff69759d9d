"""aiohttp (async): a ClientSession per request, and the fix with TCPConnector's knobs.

Both are ``async`` request functions; the harness runs them on an event loop of
its own (``AsyncTarget``) and calls ``aclose()`` on that loop when done.
"""
from __future__ import annotations

import aiohttp

from .kept import Kept
from .tuning import ClientTuning


class AiohttpSessionPerRequest:
    """Faulty: a new ``aiohttp.ClientSession`` per request, never closed."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.kept = Kept()
        self.ssl = tuning.ssl_context or True

    async def __call__(self, url: str) -> int:
        session = self.kept.keep(aiohttp.ClientSession())
        async with session.get(url, ssl=self.ssl) as response:
            await response.read()
            return response.status

    async def aclose(self) -> None:
        for session in self.kept.take_all():
            await session.close()


class AiohttpFixed:
    """Fixed: one session on ``TCPConnector(limit_per_host, keepalive_timeout)`` with a
    ``ClientTimeout``; a failed request retires its session (later requests take a new one),
    and a retired session is closed, with its idle connections, once its last request ends.
    Closed at once, it stranded the requests queued on its connector for a free connection:
    aiohttp never wakes them (a sweep's timed-out request left 17 waiting for good)."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.tuning = tuning
        self.session: aiohttp.ClientSession | None = None  # made on the harness's loop, at first use
        self.in_flight: dict[aiohttp.ClientSession, int] = {}  # requests under way, by the session they use

    def _new_session(self) -> aiohttp.ClientSession:
        t = self.tuning
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=t.max_in_flight_per_host,
                                         keepalive_timeout=t.idle_timeout)
        timeout = aiohttp.ClientTimeout(sock_connect=t.connect_timeout, sock_read=t.read_timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def __call__(self, url: str) -> int:
        if self.session is None:
            self.session = self._new_session()
        session = self.session
        self.in_flight[session] = self.in_flight.get(session, 0) + 1
        try:
            async with session.get(url, ssl=self.tuning.ssl_context or True) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            if self.session is session:  # the first of its requests to fail retires it
                self.session = self._new_session()
            raise
        finally:
            self.in_flight[session] -= 1
            if not self.in_flight[session] and session is not self.session:
                del self.in_flight[session]
                await session.close()  # aiohttp has no close-idle call: closing the retired session does it

    async def aclose(self) -> None:
        for session in {*self.in_flight, *([self.session] if self.session is not None else [])}:
            await session.close()
        self.in_flight.clear()
