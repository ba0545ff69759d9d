"""The seed's fixed client: one shared client, bounded idle connections."""
from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

from .idle_pool import IdleLimitedPoolManager, IdlePolicy
from .tuning import ClientTuning

FixedSettings = ClientTuning  # the seed's knobs are the catalog's: one definition


class _IdleLimitedAdapter(HTTPAdapter):
    def __init__(self, policy: IdlePolicy, max_idle_per_host: int) -> None:
        self._policy = policy
        super().__init__(pool_connections=10, pool_maxsize=max_idle_per_host, pool_block=False)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = IdleLimitedPoolManager(
            self._policy, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )


class FixedClient:
    """One ``requests.Session`` for every request, as the seed's fixed client.

    Keep-alive; no proxy from the environment (Go's ``http.Transport{}`` has none);
    connect and read timeouts; at most ``max_idle_per_host`` idle
    connections per host and ``max_idle_total`` in all; idle connections older
    than ``idle_timeout`` are closed; when a request fails, every idle
    connection is closed (Go's ``CloseIdleConnections()``).
    """

    name = "fixed"

    def __init__(self, settings: FixedSettings | None = None) -> None:
        self.settings = settings or FixedSettings()
        self.policy = IdlePolicy(self.settings.max_idle_total, self.settings.idle_timeout)
        self.session = requests.Session()
        self.session.verify = self.settings.verify
        # as the Go program's own Transport, which set no Proxy: no proxy or .netrc from the environment (reading
        # them was a quarter of this client's CPU a request: 0.35 of 1.1 ms)
        self.session.trust_env = False
        adapter = _IdleLimitedAdapter(self.policy, self.settings.max_idle_per_host)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @property
    def idle_cap_per_host(self) -> int:
        return self.idle_cap(1)

    def idle_cap(self, hosts: int) -> int:
        """The most idle connections it keeps across ``hosts`` hosts."""
        return min(self.settings.max_idle_per_host * hosts, self.settings.max_idle_total)

    def __call__(self, url: str) -> int:
        try:
            response = self.session.get(url, timeout=(self.settings.connect_timeout, self.settings.read_timeout))
            return response.status_code  # body already read: the connection is back in the pool
        except requests.RequestException:
            self.close_idle_connections()
            raise

    def close_idle_connections(self) -> int:
        return self.policy.close_idle()

    def close(self) -> None:
        self.session.close()
        self.policy.close_idle()
        self.policy.close()
