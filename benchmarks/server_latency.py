"""Benchmark: the slow server holding N concurrent slow requests.

    python benchmarks/server_latency.py [--connections 1000 5000] [--delay 2]

For each N: N keep-alive connections are opened, then every one sends one
request at once; latency is measured from the send to the end of the response.
Prints the overhead over the delay (p50, p99, max, in ms), the requests that
failed, and the server's RSS. The client is asyncio in this process, on the same
cores as the server, so its own cost is part of the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.server import raise_open_files_limit
from harness.server_process import ServerProcess

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
RESPONSE_END = b"ok\n"


class Tally:
    """Counts connections settled (open or failed); ``ready`` is set when all have."""

    def __init__(self, n: int) -> None:
        self.n, self.settled = n, 0
        self.ready = asyncio.Event()

    def settle(self) -> None:
        self.settled += 1
        if self.settled == self.n:
            self.ready.set()


async def one(host: str, port: int, start: asyncio.Event, tally: Tally, latencies: list, failures: list) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=30)
    except (OSError, asyncio.TimeoutError) as exc:
        failures.append(f"connect: {type(exc).__name__}")
        tally.settle()
        return
    tally.settle()
    try:
        await start.wait()
        sent = time.monotonic()
        writer.write(REQUEST)
        data = b""
        while not data.endswith(RESPONSE_END):
            chunk = await asyncio.wait_for(reader.read(4096), timeout=60)
            if not chunk:
                raise ConnectionError("closed before the response")
            data += chunk
        latencies.append(time.monotonic() - sent)
    except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
        failures.append(f"request: {type(exc).__name__}")
    finally:
        writer.close()


async def measure(server: ServerProcess, n: int) -> dict:
    start = asyncio.Event()
    tally = Tally(n)
    latencies: list[float] = []
    failures: list[str] = []
    tasks = [asyncio.create_task(one(server.host, server.port, start, tally, latencies, failures)) for _ in range(n)]
    await asyncio.wait_for(tally.ready.wait(), timeout=60)  # every connection open (or failed)
    rss_mb = psutil.Process(server.pid).memory_info().rss / 2**20
    start.set()
    await asyncio.gather(*tasks)
    return {"latencies": latencies, "failures": failures, "rss_mb": rss_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--delay", type=float, default=2.0)
    args = parser.parse_args()
    limit = raise_open_files_limit()
    print(f"open-files limit {limit}; delay {args.delay} s; {psutil.cpu_count()} cores")
    print(f"{'connections':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'failed':>7} {'server RSS MB':>14}")
    for n in args.connections:
        if n + 100 > limit:
            print(f"{n:>11} skipped: the open-files limit ({limit}) is too low")
            continue
        with ServerProcess(delay=args.delay, track_interval=3600) as server:
            figures = asyncio.run(measure(server, n))
        overheads = sorted((lat - args.delay) * 1000 for lat in figures["latencies"])
        if overheads:
            p50 = statistics.median(overheads)
            p99 = overheads[min(len(overheads) - 1, int(len(overheads) * 0.99))]
            print(f"{n:>11} {p50:>8.1f} {p99:>8.1f} {overheads[-1]:>8.1f} {len(figures['failures']):>7} "
                  f"{figures['rss_mb']:>14.1f}")
        else:
            print(f"{n:>11} every request failed: {figures['failures'][:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
