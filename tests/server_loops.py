"""The server's own tests run on every event loop it may use (``--loop``): asyncio's
own, and uvloop where it is installed (a dependency wherever it builds)."""
import functools
import importlib.util

import pytest

LOOPS = ("asyncio",) + (("uvloop",) if importlib.util.find_spec("uvloop") else ())


@pytest.fixture(params=LOOPS)
def start_slow_server(request, start_slow_server):
    """The plugin's factory, each test once per loop."""
    return functools.partial(start_slow_server, loop=request.param)
