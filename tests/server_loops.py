"""The server's own tests run on every event loop it may use (``--loop``): asyncio's
own, and uvloop where it is installed (a dependency wherever it builds); and with
either parser (``--parser``): h11 for every request on asyncio's loop, and the fast
path for plain heads (httptools where installed) on the other. A pair each, not every
combination: the loop and the parser do not meet (the parser reads bytes a loop hands
over), and a test run's time is worth keeping."""
import asyncio
import functools
import importlib.util

import pytest

LOOPS = ("asyncio",) + (("uvloop",) if importlib.util.find_spec("uvloop") else ())
SERVERS = {"asyncio-h11": ("asyncio", "h11"), f"{LOOPS[-1]}-auto": (LOOPS[-1], "auto")}


@pytest.fixture(params=list(SERVERS))
def start_slow_server(request, start_slow_server):
    """The plugin's factory, each test once per (loop, parser) pair."""
    loop, parser = SERVERS[request.param]
    return functools.partial(start_slow_server, loop=loop, parser=parser)


def run_on(loop_name: str, coroutine) -> object:
    """Run ``coroutine`` in this process on the event loop named (one of LOOPS): for a test of the server's
    pieces in process (``SlowServer``, ``Deadlines``)."""
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)
