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
    ``ClientTimeout``; a failed request closes the connector's idle connections."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.tuning = tuning
        self.session: aiohttp.ClientSession | None = None  # made on the harness's loop, at first use

    def _new_session(self) -> aiohttp.ClientSession:
        t = self.tuning
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=t.max_in_flight_per_host,
                                         keepalive_timeout=t.idle_timeout)
        timeout = aiohttp.ClientTimeout(sock_connect=t.connect_timeout, sock_read=t.read_timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def __call__(self, url: str) -> int:
        if self.session is None:
            self.session = self._new_session()
        try:
            async with self.session.get(url, ssl=self.tuning.ssl_context or True) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            old, self.session = self.session, self._new_session()
            await old.close()  # aiohttp has no close-idle call: closing the old session does it
            raise

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
