"""requests, beyond the seed's pair: streamed responses never closed."""
from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

from .kept import Kept
from .tuning import ClientTuning


class RequestsStreamNeverClosed:
    """Faulty: one shared session, but ``stream=True`` responses are never read or
    closed; each keeps its connection, so the pool opens a new one every time."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.session = requests.Session()
        self.session.verify = tuning.verify
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(pool_maxsize=tuning.max_idle_per_host))
        self.kept = Kept()

    def __call__(self, url: str) -> int:
        return self.kept.keep(self.session.get(url, stream=True)).status_code

    def close(self) -> None:
        self.kept.release(lambda response: response.close())
        self.session.close()
