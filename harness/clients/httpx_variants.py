"""httpx: a Client per request, streamed responses never closed, and the same over HTTP/2."""
from __future__ import annotations

import threading

import httpx

from .kept import Kept
from .tuning import ClientTuning


class HttpxClientPerRequest:
    """Faulty: a new ``httpx.Client`` per request, kept alive and never closed."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.kept = Kept()
        # its clients share one SSL context: loading the CA bundle costs ~30 ms of CPU a client (a faulty run makes
        # dozens), and has nothing to do with the sockets each client opens and keeps
        self.verify = tuning.ssl_context or httpx.create_ssl_context()

    def __call__(self, url: str) -> int:
        return self.kept.keep(httpx.Client(verify=self.verify)).get(url).status_code

    def close(self) -> None:
        self.kept.release(lambda client: client.close())


class HttpxStreamNeverClosed:
    """Faulty: one client, but ``send(..., stream=True)`` responses are never read or
    closed; each holds its connection, so the pool keeps opening new ones."""

    def __init__(self, tuning: ClientTuning) -> None:
        # no connection cap, so the pool grows instead of blocking on a full pool
        self.client = httpx.Client(limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                                   verify=tuning.ssl_context or True)
        self.kept = Kept()

    def __call__(self, url: str) -> int:
        response = self.client.send(self.client.build_request("GET", url), stream=True)
        return self.kept.keep(response).status_code

    def close(self) -> None:
        self.kept.release(lambda response: response.close())
        self.client.close()


class HttpxFixed:
    """Fixed: one ``httpx.Client`` with ``Limits(max_keepalive_connections,
    keepalive_expiry)`` and timeouts; a failed request closes the idle ones.

    httpx has no close-idle call (Go's ``CloseIdleConnections``): a failed request puts
    a new client in place, and the old one, whose pool holds the idle connections, is
    closed once the last request still using it ends. Closing it at once would cut
    those requests too (a soak: one read timeout became 11 failures, the others cut
    mid-handshake or mid-answer by another thread's ``close()``).
    """

    def __init__(self, tuning: ClientTuning) -> None:
        self.tuning = tuning
        self._lock = threading.Lock()
        self.client = self._new_client()
        self._using: dict[httpx.Client, int] = {}  # requests under way on each client
        self._retired: set[httpx.Client] = set()  # replaced after a failure: closed when its last request ends

    def _new_client(self) -> httpx.Client:
        t = self.tuning
        return httpx.Client(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=t.max_idle_total,
                                keepalive_expiry=t.idle_timeout),
            timeout=httpx.Timeout(t.read_timeout, connect=t.connect_timeout),
            verify=t.ssl_context or True,
        )

    def __call__(self, url: str) -> int:
        with self._lock:
            client = self.client
            self._using[client] = self._using.get(client, 0) + 1
        try:
            return client.get(url).status_code
        except httpx.HTTPError:
            with self._lock:
                if self.client is client:  # the first failure on it replaces it; later ones find it replaced
                    self.client = self._new_client()
                    self._retired.add(client)
            raise
        finally:
            with self._lock:
                self._using[client] -= 1
                last = self._using[client] == 0 and client in self._retired
                if last:
                    del self._using[client]
                    self._retired.discard(client)
            if last:
                client.close()

    def close(self) -> None:
        with self._lock:
            clients = [self.client, *self._retired]
            self._retired.clear()
        for client in clients:
            client.close()


class HttpxH2ClientPerRequest:
    """Faulty, HTTP/2 (async): a new ``httpx.AsyncClient(http2=True)`` per request, kept: each holds
    its own connection, where one multiplexed connection would carry them all."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.kept = Kept()
        self.verify = tuning.ssl_context or httpx.create_ssl_context()  # shared, as HttpxClientPerRequest's

    async def __call__(self, url: str) -> int:
        return (await self.kept.keep(httpx.AsyncClient(http2=True, verify=self.verify)).get(url)).status_code

    async def aclose(self) -> None:
        for client in self.kept.take_all():
            await client.aclose()


class HttpxH2Fixed:
    """Fixed, HTTP/2 (async): one shared ``httpx.AsyncClient(http2=True)``, every request in flight
    multiplexed on one connection per host; ``Limits(keepalive_expiry)`` and timeouts; a failed
    request replaces the client. Async: httpcore's sync HTTP/2 raced its own stream ids across
    threads under load here (a server saw ids out of order: ``StreamIDTooLowError``)."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.tuning = tuning
        self.client: httpx.AsyncClient | None = None  # made on the harness's loop, at first use

    def _new_client(self) -> httpx.AsyncClient:
        t = self.tuning
        return httpx.AsyncClient(
            http2=True,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=t.max_idle_total,
                                keepalive_expiry=t.idle_timeout),
            timeout=httpx.Timeout(t.read_timeout, connect=t.connect_timeout),
            verify=t.ssl_context or True,
        )

    async def __call__(self, url: str) -> int:
        if self.client is None:
            self.client = self._new_client()
        try:
            return (await self.client.get(url)).status_code
        except httpx.HTTPError:
            old, self.client = self.client, self._new_client()
            await old.aclose()
            raise

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
