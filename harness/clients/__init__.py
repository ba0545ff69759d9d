"""Client variants, and resolving a TARGET to one.

A TARGET is a catalog variant's name (``faulty``, ``httpx-fixed``, ...; see
``harness.clients.catalog``) or ``package.module:function``: a user's function that performs one request to the
URL it is given (module-level state is allowed). An ``async def`` function is
run on an event loop of its own.
"""
from __future__ import annotations

import asyncio
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


class AsyncTarget:
    """Drives an ``async def`` request function on one event loop of its own.

    The loop runs in a thread; each request thread submits a coroutine and
    waits for it, so in-flight counting works as for plain functions, and
    module-level async clients (an aiohttp session, say) live on one loop.
    """

    def __init__(self, function: Callable[[str], object]) -> None:
        self.function = function
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="target-event-loop", daemon=True)
        self.thread.start()

    def __call__(self, url: str) -> object:
        return asyncio.run_coroutine_threadsafe(self.function(url), self.loop).result()  # type: ignore[arg-type]

    def close(self) -> None:
        """Runs the function's ``aclose()`` (if any) on its loop, then stops the loop."""
        if self.loop.is_closed():
            return
        aclose = getattr(self.function, "aclose", None)
        if callable(aclose):
            asyncio.run_coroutine_threadsafe(aclose(), self.loop).result(timeout=10)
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
