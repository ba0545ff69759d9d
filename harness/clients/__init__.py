"""Client variants, and resolving a TARGET to one.

A TARGET is a built-in variant name (``faulty``, ``fixed``) or
``package.module:function``: a user's function that performs one request to the
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

from .faulty import FaultyClient
from .fixed import FixedClient, FixedSettings

BUILTINS: dict[str, Callable[[], object]] = {
    "faulty": FaultyClient,
    "fixed": FixedClient,
}


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
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


def fixed_settings_for(delay: float, idle_timeout: float) -> FixedSettings:
    """The fixed client's knobs for a server delay: reads time out well after it."""
    return FixedSettings(read_timeout=max(1.0, 5 * delay), idle_timeout=idle_timeout)


def resolve(target: str, delay: float = 0.2, idle_timeout: float = 0.5) -> Callable[[str], object]:
    """Return a fresh request function for ``target``; raises TargetError.

    ``delay`` and ``idle_timeout`` (seconds) configure the built-in fixed client.
    """
    if target == "fixed":
        return FixedClient(fixed_settings_for(delay, idle_timeout))
    if target in BUILTINS:
        return BUILTINS[target]()  # type: ignore[return-value]
    if ":" not in target:
        names = ", ".join(sorted(BUILTINS))
        raise TargetError(f"unknown variant {target!r}: use one of {names} or package.module:function")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise TargetError(f"target {target!r}: expected package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a user's module beside where they run us
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own error at import time
        raise TargetError(f"target {target!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"target {target!r}: module {module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise TargetError(f"target {target!r}: {attr!r} is not callable")
    if inspect.iscoroutinefunction(obj):
        return AsyncTarget(obj)
    return obj  # type: ignore[return-value]


__all__ = ["BUILTINS", "FaultyClient", "FixedClient", "FixedSettings", "TargetError", "resolve"]
