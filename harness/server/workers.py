"""``python -m harness.server --workers N``: N processes serve one port.

Each worker is a whole slow server (``protocol.SlowServer``) on its own listening socket,
all bound to the same port with SO_REUSEPORT, so the kernel spreads the connections among
them; they share ``/stats``, the ``/hold`` barrier, the handshakes to stall, the every-N-th
fault's count and whether the server accepts (``shared.py``). The process started is the
parent: it binds the sockets (port 0: the first picks the port, the others join it), forks
the workers before any event loop exists, prints the ready line once every worker is
serving, and only supervises after that. SIGTERM or SIGINT to the parent ends every worker
(SIGTERM, SIGKILL after ``STOP_GRACE_S``); a worker that ends on its own is an error that
ends the others (exit status 1); a parent killed outright takes its workers along (each
asked the kernel for SIGTERM at its parent's death).

Why: one event loop reads and answers ~13 us a request, so 10,000 requests at once queue
~130 ms behind each other; two workers on two cores add p99 +34-43 ms where one process
adds +144-148 (the bench at 10,000, two runs: ``server_vs_one_process``), at the price of
an interpreter each (~10 MB). Linux only (SO_REUSEPORT spreads connections there, pidfds
watch the workers).
"""
from __future__ import annotations

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

from ..options import UsageError
from .protocol import STATS_FIELDS, SlowServer, _backlog, bind_listener
from .shared import Shared

MAX_WORKERS = 64
START_DEADLINE_S = 30.0  # every worker serving: ~0.1 s each; 30 s on a machine loaded to its limit
STOP_GRACE_S = 5.0  # as ServerProcess: SIGTERM ends a worker in ~0.1 s; 5 s before SIGKILL
SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
PR_SET_PDEATHSIG = 1  # prctl(2)

# a worker: (its listening socket, the shared state with its number set, the fd to write b"r" to once serving) -> status
RunWorker = Callable[[socket.socket, Shared, int], int]


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
    """Fork a worker per socket of ``listening``, print ``ready`` (with the port and this
    process's pid) once each is serving, then supervise until a signal or a worker's end.
    Returns the exit status: 0 when stopped by SIGTERM or SIGINT, 1 when a worker failed."""
    if not available():
        raise UsageError("--workers above 1 needs Linux (SO_REUSEPORT and pidfds)")
    shared = Shared(len(listening), STATS_FIELDS)
    ready_read, ready_write = os.pipe()
    parent = os.getpid()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # taken by sigwait below; the workers restore it
    pids: list[int] = []
    try:
        for number, sock in enumerate(listening):
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                _worker(number, listening, shared, ready_read, ready_write, old_mask, parent, run_worker)
            pids.append(pid)
    finally:
        os.close(ready_write)
        for sock in listening:
            sock.close()
        shared.close_in_parent()
    pidfds = {os.pidfd_open(pid): pid for pid in pids}
    try:
        failed = _wait_ready(ready_read, pidfds, len(pids))
        if failed is None:
            print(json.dumps({**ready, "pid": parent, "workers": len(pids)}), flush=True)
            failed = _supervise(pidfds)
        _stop(pidfds)
        return 1 if failed else 0
    finally:
        os.close(ready_read)
        for fd in pidfds:
            os.close(fd)
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
        status = run_worker(listening[number], shared, ready_write)
    except UsageError as exc:
        print(f"harness.server: error: worker {number}: {exc}", file=sys.stderr)
        status = 2
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _wait_ready(ready_read: int, pidfds: dict[int, int], count: int) -> str | None:
    """Until ``count`` workers said they serve: None; or why not (a worker ended, the deadline, a signal)."""
    deadline = time.monotonic() + START_DEADLINE_S
    said = 0
    while said < count:
        left = deadline - time.monotonic()
        if left <= 0:
            SlowServer.log(f"workers: {count - said} of {count} not serving after {START_DEADLINE_S:g} s: stopping")
            return "deadline"
        readable, _, _ = select.select([ready_read, *pidfds], [], [], min(left, 1.0))
        if ready_read in readable:
            said += len(os.read(ready_read, count))
        ended = [fd for fd in readable if fd in pidfds]
        if ended:
            SlowServer.log(f"workers: worker pid {pidfds[ended[0]]} ended before serving: stopping")
            return "ended"
        if signal.sigtimedwait([signal.SIGTERM, signal.SIGINT], 0) is not None:
            return "signal"
    return None


def _supervise(pidfds: dict[int, int]) -> str | None:
    """Until SIGTERM or SIGINT (None) or a worker's end ("ended")."""
    while True:
        received = signal.sigwait(SIGNALS)
        if received != signal.SIGCHLD:
            return None
        readable, _, _ = select.select(list(pidfds), [], [], 0)
        if readable:
            pid = pidfds[readable[0]]
            _, status = os.waitpid(pid, os.WNOHANG)
            SlowServer.log(f"workers: worker pid {pid} ended on its own (status {os.waitstatus_to_exitcode(status)}): "
                "stopping the others")
            return "ended"


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
