"""The seed's faulty client: a new client per request, nothing ever closed."""
from __future__ import annotations

import threading

import requests


class FaultyClient:
    """A new ``requests.Session`` per request, no timeout, never closed.

    The Go program built a new ``http.Client`` and transport per request; the
    transports stayed alive, and so did their keep-alive sockets, ESTABLISHED.
    In CPython a dropped session is closed at once by reference counting, which
    would show up only as TIME_WAIT churn, not as the leak. So, like the Go
    transports, every session is kept referenced here: each request leaves one
    ESTABLISHED socket behind.
    """

    name = "faulty"

    def __init__(self, verify: str | bool = True) -> None:
        self.verify = verify  # requests' own: True, or the CA file of an HTTPS server
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __call__(self, url: str) -> int:
        session = requests.Session()
        session.trust_env = False  # as the Go program's own Transport, which had no Proxy: no proxy, no .netrc
        with self._lock:
            self._sessions.append(session)
        return session.get(url, verify=self.verify).status_code  # no timeout, as in the seed

    def close(self) -> None:
        """Not part of the faulty behaviour: lets the harness leave no socket behind."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
