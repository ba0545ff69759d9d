"""``python -m harness.peers.aiohttp_server --delay S``: an aiohttp.web server that
answers ``ok\\n`` to every request after S seconds; prints ``{"host", "port", "pid"}``
once listening on 127.0.0.1 (port 0); SIGTERM ends it."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket

from aiohttp import web


async def serve(delay: float) -> None:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0), backlog=65535)
    await web.SockSite(runner, sock, backlog=65535).start()
    print(json.dumps({"host": "127.0.0.1", "port": sock.getsockname()[1], "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="harness.peers.aiohttp_server")
    parser.add_argument("--delay", type=float, default=2.0)
    asyncio.run(serve(parser.parse_args().delay))


if __name__ == "__main__":
    main()
