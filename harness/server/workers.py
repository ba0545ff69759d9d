"""``python -m harness.server --workers N``: N processes serve one port.

Each worker is a whole slow server (``protocol.SlowServer``) on its own listening socket,
all bound to the same port with SO_REUSEPORT, so the kernel spreads the connections among
them; they share ``/stats``, the ``/hold`` barrier, the handshakes to stall, the every-N-th
fault's count and whether the server accepts (``shared.py``). The process started binds the
sockets (port 0: the first picks the port, the others join it), forks the other workers
before any event loop exists, and serves as worker 0: it prints the ready line once every
worker is serving (``Crew``), and stops the server when another worker ends (an error: exit
status 1). SIGTERM or SIGINT to it stops it, then the others (SIGTERM, SIGKILL after
``STOP_GRACE_S``); killed outright, it takes them along (each asked the kernel for SIGTERM
at its parent's death).

Why: one event loop writes each answer in ~8 us (most of it the send), so 10,000 answers
due within ~30 ms go out over ~80; two workers on two cores add about half of what one
process adds (the bench at 10,000, two runs: p99 +20-25 ms against +39-42,
``server_vs_workers``), at the price of the pages each worker writes after the fork (~6 MB
each, besides its connections): 1.2x one process's memory. Worker 0 serving rather than
only supervising saves a third copy of them: two workers holding 5,000 connections took
41 MB (PSS) under a parent that only supervised, 35 with worker 0 serving (one process:
29). Linux only (SO_REUSEPORT spreads connections there, pidfds watch the workers).
"""
from __future__ import annotations

import asyncio
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

from ..values import UsageError
from .protocol import STATS_FIELDS, SlowServer, _backlog, bind_listener
from .shared import Shared

MAX_WORKERS = 64
START_DEADLINE_S = 30.0  # every worker serving: ~0.1 s each; 30 s on a machine loaded to its limit
STOP_GRACE_S = 5.0  # as ServerProcess: SIGTERM ends a worker in ~0.1 s; 5 s before SIGKILL
SIGNALS = {signal.SIGTERM, signal.SIGINT}
PR_SET_PDEATHSIG = 1  # prctl(2)

# once a worker serves, it calls this with its server (the others tell worker 0; worker 0 watches them: Crew.watch)
Serving = Callable[[SlowServer], None]
# a worker: (its listening socket, the shared state with its number set, what it calls once serving) -> status
RunWorker = Callable[[socket.socket, Shared, Serving], int]


def available() -> bool:
    """Whether several workers can share a port here: Linux, with SO_REUSEPORT and pidfds."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT") and hasattr(os, "pidfd_open")


def cores() -> int:
    """CPU cores this process may run on (``--workers auto``; the bench's workers), 1 to MAX_WORKERS."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, count))


def bind_all(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on one port (SO_REUSEPORT); port 0: the first one's. Raises as bind does.

    A port given is first bound alone, without SO_REUSEPORT, and let go: a server of the same
    user listening there with SO_REUSEPORT (another ``--workers`` server) would otherwise take
    these sockets into its group and share the connections (EADDRINUSE instead)."""
    if port != 0:
        bind_listener(host, port).close()
    listening = [bind_listener(host, port, reuse_port=True)]
    try:
        port = listening[0].getsockname()[1]
        listening += [bind_listener(host, port, reuse_port=True) for _ in range(count - 1)]
        for sock in listening:
            sock.listen(_backlog())  # before the fork: a connection that comes early waits in a queue, not refused
    except BaseException:
        for sock in listening:
            sock.close()
        raise
    return listening


def serve_workers(listening: list[socket.socket], run_worker: RunWorker, ready: dict) -> int:
    """Fork a worker for every socket of ``listening`` but the first, and serve the first in
    this process (worker 0), which prints ``ready`` (with the port, its pid and the count of
    workers) once every worker serves, and ends the server when another worker ends.
    Returns the exit status: 0 when stopped by SIGTERM or SIGINT, 1 when a worker failed."""
    if not available():
        raise UsageError("--workers above 1 needs Linux (SO_REUSEPORT and pidfds)")
    shared = Shared(len(listening), STATS_FIELDS)
    ready_read, ready_write = os.pipe()
    parent = os.getpid()
    # blocked until worker 0's event loop handles them (main.serve): a SIGTERM that comes while the workers start
    # waits for it, and then stops the server as any SIGTERM does; each forked worker unblocks them at once
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    crew = Crew(ready_read, {**ready, "pid": parent, "workers": len(listening)})
    try:
        try:
            for number in range(1, len(listening)):
                pid = os.fork()
                if pid == 0:  # the worker: never returns
                    _worker(number, listening, shared, ready_read, ready_write, old_mask, parent, run_worker)
                crew.add(pid)
        finally:
            os.close(ready_write)
            for sock in listening[1:]:
                sock.close()
        shared.for_worker(0)
        status = run_worker(listening[0], shared, crew.watch)
        return 1 if crew.failed else status
    finally:
        crew.stop()  # every other worker ended, however worker 0 ends
        os.close(ready_read)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _worker(number: int, listening: list[socket.socket], shared: Shared, ready_read: int, ready_write: int,
            old_mask: set, parent: int, run_worker: RunWorker) -> None:
    status = 1
    try:
        try:  # ended with its parent, however the parent ends
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent died before the prctl
            os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(ready_read)
        for i, sock in enumerate(listening):
            if i != number:
                sock.close()
        shared.for_worker(number)

        def serving(server: SlowServer) -> None:
            os.write(ready_write, b"r")
            os.close(ready_write)

        status = run_worker(listening[number], shared, serving)
    except UsageError as exc:
        print(f"harness.server: error: worker {number}: {exc}", file=sys.stderr)
        status = 2
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


class Crew:
    """The other workers, as worker 0 (the process started) watches them on its event loop:
    the ready line once all of them serve, the server stopped when one ends or is not serving
    by ``START_DEADLINE_S``; ``stop`` ends them once worker 0 has stopped."""

    def __init__(self, ready_read: int, ready: dict) -> None:
        self.pidfds: dict[int, int] = {}  # {pidfd: pid}
        self.ready_read = ready_read
        self.ready = ready
        self.waiting = 0  # workers not yet serving
        self.failed: str | None = None  # why the server stopped, when it was a worker's doing
        self._late: asyncio.TimerHandle | None = None

    def add(self, pid: int) -> None:
        """A worker forked."""
        self.pidfds[os.pidfd_open(pid)] = pid
        self.waiting += 1

    def watch(self, server: SlowServer) -> None:
        """Worker 0 serves: wait for the others (on the running loop), and watch them."""
        loop = asyncio.get_running_loop()
        for fd in self.pidfds:
            loop.add_reader(fd, self._ended, fd, server)
        if self.waiting == 0:
            self._all_serving()
            return
        loop.add_reader(self.ready_read, self._told, server)
        self._late = loop.call_later(START_DEADLINE_S, self._not_serving, server)

    def _told(self, server: SlowServer) -> None:
        said = os.read(self.ready_read, 64)
        self.waiting -= len(said)
        if not said or self.waiting <= 0:  # b"": every worker closed its end (the ones not serving ended)
            asyncio.get_running_loop().remove_reader(self.ready_read)
        if self.waiting <= 0 and self.failed is None:
            self._all_serving()

    def _all_serving(self) -> None:
        if self._late is not None:
            self._late.cancel()
        print(json.dumps(self.ready), flush=True)

    def _not_serving(self, server: SlowServer) -> None:
        count = len(self.pidfds) + 1
        SlowServer.log(f"workers: {self.waiting} of {count} not serving after {START_DEADLINE_S:g} s: stopping")
        self._fail("deadline", server)

    def _ended(self, fd: int, server: SlowServer) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        pid = self.pidfds[fd]
        _, status = os.waitpid(pid, os.WNOHANG)
        how = "before serving" if self.waiting > 0 else f"on its own (status {os.waitstatus_to_exitcode(status)})"
        SlowServer.log(f"workers: worker pid {pid} ended {how}: stopping the others")
        self._fail("ended", server)

    def _fail(self, why: str, server: SlowServer) -> None:
        if self.failed is None:
            self.failed = why
        if self._late is not None:
            self._late.cancel()
        server.stop()

    def stop(self) -> None:
        """Once worker 0's loop is over: end every other worker, and let go of their pidfds."""
        try:
            _stop(self.pidfds)
        finally:
            for fd in self.pidfds:
                os.close(fd)
            self.pidfds = {}


def _stop(pidfds: dict[int, int]) -> None:
    """SIGTERM every worker still running, SIGKILL after STOP_GRACE_S; reap them all."""
    running = dict(pidfds)
    for fd, pid in list(running.items()):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for signum in (signal.SIGTERM, signal.SIGKILL):  # SIGTERM sent above; SIGKILL to whatever outlives the grace
        if signum == signal.SIGKILL:
            for pid in running.values():
                SlowServer.log(f"workers: worker pid {pid} still running {STOP_GRACE_S:g} s after SIGTERM: killed")
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE_S
        while running and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select(list(running), [], [], left)
            for fd in readable:
                running.pop(fd)
        if not running:
            break
    for pid in pidfds.values():
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
