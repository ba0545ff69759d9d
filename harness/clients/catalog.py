"""The client catalog: for each library, the ways it really leaks and its fix.

Every entry is a faulty or a fixed variant; its name starts with its library
(``httpx-faulty-stream``), so ``pytest -k httpx`` selects a library and
``-k faulty`` / ``-k fix`` select a kind across all of them.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .faulty import FaultyClient
from .fixed import FixedClient
from .tuning import ClientTuning

FAULTY, FIXED = "faulty", "fixed"


def _imported(module: str, name: str) -> Callable[[ClientTuning], object]:
    """A variant's maker whose module (and its library) is imported when first called:
    a run of one variant, or ``harness list``, does not pay for every library (aiohttp
    alone is ~0.1 s)."""
    def make(tuning: ClientTuning) -> object:
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(tuning)
    make.__qualname__ = name
    return make


@dataclass(frozen=True)
class Variant:
    """One catalog entry. ``make(tuning)`` returns a fresh client: a callable that
    performs one request to the URL it is given (a coroutine function if
    ``is_async``), with ``close()`` or ``aclose()`` to release what it holds."""

    name: str
    library: str
    kind: str  # FAULTY or FIXED: the verdict it must get (growth or plateau)
    summary: str
    make: Callable[[ClientTuning], object]
    is_async: bool = False
    http2: bool = False  # speaks HTTP/2, which clients negotiate over TLS (ALPN): run over HTTPS


VARIANTS: tuple[Variant, ...] = (
    Variant("faulty", "requests", FAULTY, "the seed's faulty client: a new Session per request, kept, never closed",
            lambda tuning: FaultyClient(tuning.verify)),
    Variant("fixed", "requests", FIXED, "the seed's fixed client: one Session, 2 idle per host, 5 in all, idle timeout, "
            "close idle on error", FixedClient),
    Variant("requests-faulty-stream", "requests", FAULTY,
            "one Session, stream=True responses never read or closed", _imported("requests_variants", "RequestsStreamNeverClosed")),
    Variant("urllib3-faulty", "urllib3", FAULTY, "a new PoolManager per request, kept alive", _imported("urllib3_variants", "Urllib3PoolPerRequest")),
    Variant("urllib3-faulty-stream", "urllib3", FAULTY,
            "one PoolManager, preload_content=False responses never released", _imported("urllib3_variants", "Urllib3StreamNeverReleased")),
    Variant("urllib3-fixed", "urllib3", FIXED, "one PoolManager(num_pools, maxsize=2) with timeouts, cleared on error",
            _imported("urllib3_variants", "Urllib3Fixed")),
    Variant("httpx-faulty", "httpx", FAULTY, "a new httpx.Client per request, never closed", _imported("httpx_variants", "HttpxClientPerRequest")),
    Variant("httpx-faulty-stream", "httpx", FAULTY, "one Client, stream=True responses never read or closed",
            _imported("httpx_variants", "HttpxStreamNeverClosed")),
    Variant("httpx-fixed", "httpx", FIXED,
            "one Client, Limits(max_keepalive_connections=5, keepalive_expiry) and timeouts, replaced on error", _imported("httpx_variants", "HttpxFixed")),
    Variant("httpx-h2-faulty", "httpx", FAULTY, "HTTP/2: a new AsyncClient(http2=True) per request, never closed",
            _imported("httpx_variants", "HttpxH2ClientPerRequest"), is_async=True, http2=True),
    Variant("httpx-h2-fixed", "httpx", FIXED, "HTTP/2: one AsyncClient(http2=True), every request multiplexed on one "
            "connection", _imported("httpx_variants", "HttpxH2Fixed"), is_async=True, http2=True),
    Variant("aiohttp-faulty", "aiohttp", FAULTY, "a new ClientSession per request, never closed (async)",
            _imported("aiohttp_variants", "AiohttpSessionPerRequest"), is_async=True),
    Variant("aiohttp-fixed", "aiohttp", FIXED,
            "one ClientSession, TCPConnector(limit_per_host, keepalive_timeout), ClientTimeout (async)",
            _imported("aiohttp_variants", "AiohttpFixed"), is_async=True),
    Variant("stdlib-faulty", "stdlib", FAULTY, "urllib.request.urlopen responses never closed (CLOSE_WAIT)",
            _imported("stdlib_variants", "UrlopenNeverClosed")),
    Variant("stdlib-fixed", "stdlib", FIXED, "with urlopen(url, timeout=...): read and closed, a connection each",
            _imported("stdlib_variants", "UrlopenClosed")),
)
CATALOG: dict[str, Variant] = {v.name: v for v in VARIANTS}


def expectation(kind: str) -> str:
    """The verdict a variant of this kind must get."""
    return {FAULTY: "growth", FIXED: "plateau"}[kind]
