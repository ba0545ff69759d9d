"""The standard library: ``urllib.request.urlopen`` responses never closed, and closed."""
from __future__ import annotations

import urllib.request

from .kept import Kept
from .tuning import ClientTuning


class UrlopenNeverClosed:
    """Faulty: ``urlopen`` responses kept and never read or closed. urlopen asks the
    server to close (``Connection: close``); once it does, each socket sits in
    CLOSE_WAIT on the client side until the process closes it."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.kept = Kept()
        self.context = tuning.ssl_context

    def __call__(self, url: str) -> int:
        return self.kept.keep(urllib.request.urlopen(url, context=self.context)).status

    def close(self) -> None:
        self.kept.release(lambda response: response.close())


class UrlopenClosed:
    """Fixed: ``with urlopen(url, timeout=...)``: the body read, the response closed.
    One connection per request (churn), but nothing kept."""

    def __init__(self, tuning: ClientTuning) -> None:
        self.timeout = tuning.read_timeout
        self.context = tuning.ssl_context

    def __call__(self, url: str) -> int:
        with urllib.request.urlopen(url, timeout=self.timeout, context=self.context) as response:
            response.read()
            return response.status
