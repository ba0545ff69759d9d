"""urllib3: a pool manager per request, and streamed responses never released."""
from __future__ import annotations

import urllib3

from .kept import Kept
from .tuning import ClientTuning


def tls_kwargs(tuning: ClientTuning) -> dict:
    """A PoolManager's HTTPS knob: the CA to trust, when the harness serves HTTPS."""
    return {"ca_certs": tuning.ca_file} if tuning.ca_file else {}


class Urllib3PoolPerRequest:
    """Faulty: a new ``PoolManager`` per request, kept alive (the Go bug, in urllib3)."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.kept = Kept()
        self.tls = tls_kwargs(tuning)

    def __call__(self, url: str) -> int:
        return self.kept.keep(urllib3.PoolManager(**self.tls)).request("GET", url).status

    def close(self) -> None:
        self.kept.release(lambda pool: pool.clear())


class Urllib3StreamNeverReleased:
    """Faulty: one pool, but ``preload_content=False`` responses are never read or
    released, so each keeps its connection out of the pool and the pool opens another."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.pool = urllib3.PoolManager(maxsize=tuning.max_idle_per_host, **tls_kwargs(tuning))
        self.kept = Kept()

    def __call__(self, url: str) -> int:
        return self.kept.keep(self.pool.request("GET", url, preload_content=False)).status

    def close(self) -> None:
        self.kept.release(lambda response: response.release_conn() or response.close())
        self.pool.clear()


class Urllib3Fixed:
    """Fixed: one ``PoolManager(num_pools, maxsize)`` with timeouts; a failed request
    clears the pool's idle connections."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.pool = urllib3.PoolManager(
            num_pools=tuning.max_hosts,
            maxsize=tuning.max_idle_per_host,  # surplus connections are closed when returned
            timeout=urllib3.Timeout(connect=tuning.connect_timeout, read=tuning.read_timeout),
            retries=False,
            **tls_kwargs(tuning),
        )

    def __call__(self, url: str) -> int:
        try:
            return self.pool.request("GET", url).status  # body preloaded: the connection goes back
        except urllib3.exceptions.HTTPError:
            self.pool.clear()
            raise

    def close(self) -> None:
        self.pool.clear()
