"""Client variants, and resolving a TARGET to one.

A TARGET is a catalog variant's name (``faulty``, ``httpx-fixed``, ...; see
``harness.clients.catalog``) or ``package.module:function``: a user's function that performs one request to the
URL it is given (module-level state is allowed). An ``async def`` function is
run on an event loop of its own.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import os
import sys
import threading
from collections.abc import Callable

from .catalog import CATALOG, FAULTY, FIXED, VARIANTS, Variant, expectation
from .faulty import FaultyClient
from .fixed import FixedClient, FixedSettings
from .tuning import ClientTuning, tuning_for

BUILTIN_NAMES = ("faulty", "fixed")  # the seed's pair, measured in every scenario; the catalog has more


class TargetError(ValueError):
    """A TARGET that names no variant or does not import."""


# What async clients load at their first connection rather than at their import: httpx's AsyncClient (through
# httpcore) imports anyio and its asyncio backend then, ~100 modules (a first request 0.12 s, the next 0.02 s, on a
# quiet machine). On the target's loop that fell in round 1: in a loaded soak's run httpx-h2-fixed opened its
# connection ~1 s late and all 23 requests of the round timed out. An AsyncTarget loads them, where installed,
# before anything is measured.
ASYNC_STACKS = ("httpcore._backends.anyio", "anyio._backends._asyncio")


def load_async_stacks() -> list[str]:
    """Imports ``ASYNC_STACKS`` (those installed); returns the names imported."""
    loaded = []
    for name in ASYNC_STACKS:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    return loaded


class AsyncTarget:
    """Drives an ``async def`` request function on one event loop of its own.

    The loop runs in a thread, so module-level async clients (an aiohttp session,
    say) live on one loop. The driver starts each request as a task on it
    (``start_request``), as an async program would, not as a thread of its own: a
    burst of a hundred threads fights the loop's thread for the GIL, and the loop is
    what must send the burst. Called as a plain function, it waits for its request.
    """

    def __init__(self, function: Callable[[str], object]) -> None:
        self.function = function
        load_async_stacks()
        # requests started by ``start_request`` and not yet ended: held here because the loop holds its tasks
        # weakly, and a task waiting on a future nothing else holds (a connect) would be collected mid-request
        self._running: set[asyncio.Task] = set()
        self.loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[tuple[str, Callable[[BaseException | None], object]]] = asyncio.Queue()
        self.thread = threading.Thread(target=self.loop.run_forever, name="target-event-loop", daemon=True)
        self.thread.start()
        self._feeder: asyncio.Task = asyncio.run_coroutine_threadsafe(self._start_feeder(), self.loop).result()

    def __call__(self, url: str) -> object:
        return asyncio.run_coroutine_threadsafe(self.function(url), self.loop).result()  # type: ignore[arg-type]

    def start_request(self, url: str, done: Callable[[BaseException | None], object]) -> None:
        """Queues one request for the loop and returns at once (~10 us of the caller's CPU);
        ``done(error)`` is called on the loop's thread when it ends (``error`` None if it
        returned). Requests start in the order given, one a turn of the loop."""
        self.loop.call_soon_threadsafe(self._queue.put_nowait, (url, done))

    async def _start_feeder(self) -> asyncio.Task:
        return asyncio.ensure_future(self._feed())

    async def _stop_feeder(self) -> None:
        self._feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._feeder

    async def _feed(self) -> None:
        """Starts the queued requests as tasks, one a turn of the loop, as a program's
        ``for url in urls: create_task(get(url)); await asyncio.sleep(0)``. All at once
        instead, a burst advances in step (every request connects before any is sent): in a
        loaded suite, a sweep of 156 through aiohttp had not sent its 27th after 0.56 s."""
        while True:
            url, done = await self._queue.get()
            try:
                task = asyncio.ensure_future(self.function(url))  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001  a function that fails before its coroutine exists
                done(exc)
                continue
            self._running.add(task)
            task.add_done_callback(functools.partial(self._ended, done))
            await asyncio.sleep(0)

    def pending_tasks(self) -> list[asyncio.Task]:
        """The requests started and not ended, as tasks (for where a stalled client waits)."""
        return list(self._running)

    def _ended(self, done: Callable[[BaseException | None], object], task: asyncio.Task) -> None:
        self._running.discard(task)
        done(asyncio.CancelledError() if task.cancelled() else task.exception())

    def close(self) -> None:
        """Runs the function's ``aclose()`` (if any) on its loop, then stops the loop."""
        if self.loop.is_closed():
            return
        aclose = getattr(self.function, "aclose", None)
        if callable(aclose):
            asyncio.run_coroutine_threadsafe(aclose(), self.loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(self._stop_feeder(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


fixed_settings_for = tuning_for  # the seed's fixed client takes the catalog's knobs


def _is_async(function: object) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(type(function).__call__)


def make_variant(variant: Variant, delay: float = 0.2, idle_timeout: float = 0.5,
                 ca_file: str | None = None) -> Callable[[str], object]:
    """A fresh client of a catalog variant, tuned for a server delay (s); ``ca_file``: the CA
    it trusts for HTTPS (``verify=``, ``ssl=``, ``context=``: each library's own way)."""
    client = variant.make(tuning_for(delay, idle_timeout, ca_file))
    return AsyncTarget(client) if variant.is_async else client  # type: ignore[arg-type, return-value]


def target_name(target: str | Callable[[str], object]) -> str:
    """A name for a target: the string itself, or a function's module:qualname."""
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or "?"
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{name}"


def lookup(target: str | Callable[[str], object]) -> Variant | Callable[[str], object]:
    """The catalog variant or the function ``target`` names, without making a client;
    raises TargetError. Imports ``package.module`` for ``package.module:function``."""
    if callable(target):
        return target
    if target in CATALOG:
        return CATALOG[target]
    if ":" not in target:
        raise TargetError(f"unknown variant {target!r}: see `python -m harness list`, or give package.module:function")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise TargetError(f"target {target!r}: expected package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a user's module beside where they run us
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # ImportError, or the module's own error (or exit) at import time
        raise TargetError(f"target {target!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"target {target!r}: module {module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise TargetError(f"target {target!r}: {attr!r} is not callable")
    return obj  # type: ignore[return-value]


def resolve(target: str | Callable[[str], object], delay: float = 0.2, idle_timeout: float = 0.5,
            ca_file: str | None = None) -> Callable[[str], object]:
    """Return a request function for ``target``; raises TargetError.

    A TARGET is a catalog name, ``package.module:function``, or (from Python)
    the request function itself. ``delay`` and ``idle_timeout`` (seconds) tune
    the catalog's variants; ``ca_file`` is the CA they trust for HTTPS (a user's function is
    told nothing: it reads ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE``, set by the harness).
    """
    found = lookup(target)
    if isinstance(found, Variant):
        return make_variant(found, delay, idle_timeout, ca_file)
    return AsyncTarget(found) if _is_async(found) else found


__all__ = ["BUILTIN_NAMES", "CATALOG", "FAULTY", "FIXED", "VARIANTS", "ClientTuning", "FaultyClient", "FixedClient",
           "FixedSettings", "TargetError", "Variant", "expectation", "lookup", "make_variant", "resolve", "target_name"]
