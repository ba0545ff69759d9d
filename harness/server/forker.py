"""Servers forked from a process that has imported the server already.

A server started as ``python -m harness.server`` costs a new interpreter that
imports asyncio and h11: ~90 ms of CPU. A *forker* pays that once (~140 ms, its
own start), then forks a server per request. Measured on 2 cores, 20 servers
each started, asked one request and ``/stats``, and stopped: 16 ms of CPU and
26 ms of wall time a server forked (the forker's start included), against
100 ms and 114 ms as their own interpreter. A process that starts many servers
(a pytest run: the plugin turns it on; ``compare``; the bench's verdicts) asks
``ServerProcess`` to use one with ``use_forker()``; a single ``harness run``
starts its server as before. A forked server shows in ``ps`` with the forker's
command line (``python -m harness.server.forker FD``).

Two sides, one module:

* the caller's: ``Forker`` starts ``python -m harness.server.forker`` once, at
  the first server, and ``spawn(argv)`` returns a ``ForkedProcess``, which offers
  what ``ServerProcess`` uses of a ``subprocess.Popen`` (pid, stdout, stderr,
  poll, wait, terminate, kill, returncode);
* the forker's: ``serve(sock)``, one thread, forks on request and reaps each
  server when it exits (a pidfd a server), reporting its exit status.

They talk over a SOCK_SEQPACKET socket pair: a request is JSON with three file
descriptors (the server's stdin, stdout and stderr); the answers are
``{"started": pid}``, ``{"failed": reason}`` and, whenever a server ends,
``{"exited": pid, "status": code}`` (negative: the signal that ended it, as
Popen says). When the caller's end closes (its process ended, however), the
forker ends every server it forked (SIGTERM, SIGKILL after ``STOP_GRACE_S``)
and exits: it never outlives its caller.

The test suite has it fork its ``python -m harness`` runs too (``program=
"harness"``, ``tests/tools.py``): ~0.2 s of imports a run, paid once in the forker
at its first such run (the CLI is imported then, not at the forker's start). A run
forked so gets its caller's working folder (first on ``sys.path``, as ``-m`` puts
it), environment and arguments, and runs its exit handlers. It is a caller of the
same forker in turn, over a socket pair of its own (``attach``): its servers are
forked too, not started as their own interpreter (~0.15 s of CPU each), and they
end when it does.

Linux only (pidfds, Linux 5.3 and later); elsewhere ``available()`` is False and
servers start as before.
"""
from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

START_DEADLINE_S = 10.0  # the forker imports what a server does, once: ~0.3 s on a loaded machine, 10 s at most
STOP_GRACE_S = 5.0  # as ServerProcess: SIGTERM ends a server in ~0.1 s; 5 s before SIGKILL
MESSAGE_BYTES = 65536  # one request: a command line, a working folder and an environment, as JSON
# what a forked child runs: a module's main(argv); "server" is python -m harness.server, "harness" python -m harness
PROGRAMS = {"server": "harness.server.main", "harness": "harness.faces.cli"}


class ForkerError(RuntimeError):
    """The forker could not be started or stopped answering."""


def available() -> bool:
    """True where servers can be forked: Linux with pidfds and SCM_RIGHTS."""
    return hasattr(os, "pidfd_open") and hasattr(socket, "send_fds") and hasattr(socket, "SOCK_SEQPACKET")


# --- the caller's side ------------------------------------------------------------------------------------------


class ForkedProcess:
    """A server (or harness run) forked by the forker: what ServerProcess and the tests use
    of a subprocess.Popen.

    Its exit status comes from the forker, which reaps it; ``terminate`` and
    ``kill`` signal it by pid only until that status has arrived (the forker
    reaps a server only once it has exited, so a pid is never another's while
    its status is unknown here, but for the moment the message is on its way).
    """

    def __init__(self, pid: int, stdout_fd: int, stderr_fd: int, argv: list[str]) -> None:
        self.pid = pid
        self.args = argv
        self.stdout = open(stdout_fd, "rb")
        self.stderr = open(stderr_fd, "rb")
        self.returncode: int | None = None
        self._exited = threading.Event()

    def ended(self, status: int) -> None:
        self.returncode = status
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass  # exited; its status is on its way

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float) -> tuple[bytes, bytes]:
        """Its whole stdout and stderr once it has exited, as Popen's: TimeoutExpired if it
        runs past ``timeout`` s (still running: the caller kills it)."""
        outputs: dict[str, bytes] = {}
        readers = [threading.Thread(target=lambda name=name, f=f: outputs.__setitem__(name, f.read()), daemon=True)
                   for name, f in (("out", self.stdout), ("err", self.stderr))]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout
        self.wait(timeout)
        for reader in readers:  # their ends close when it exits (a grandchild holding them would hold us here)
            reader.join(max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        for f in (self.stdout, self.stderr):
            f.close()
        return outputs["out"], outputs["err"]


class Forker:
    """One forker process and the servers it forked for this process. ``Forker(sock)``: the
    forker that forked this process, through the socket it gave it (``attach``)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.process: subprocess.Popen | None = None  # None: not ours, but the forker's that forked us
        if sock is None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "harness.server.forker", str(theirs.fileno())], pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            sock = ours
        self.sock = sock
        self.servers: dict[int, ForkedProcess] = {}  # harness runs too: whatever it forked and still runs
        # a child that ended before spawn() had registered it (a harness run refused at once): its status, kept
        self.ended_early: dict[int, int] = {}
        self.exits = threading.Lock()  # the reader and spawn() over servers and ended_early
        self.answers: queue.Queue[dict] = queue.Queue()
        self.lock = threading.Lock()  # one request at a time: answers come in order
        self.reader = threading.Thread(target=self._read, name="server-forker", daemon=True)
        self.reader.start()
        if self.process is None:
            return  # the forker registered our end before forking us: nothing to wait for
        try:
            ready = self._answer(START_DEADLINE_S)
        except BaseException:
            self.close()
            raise
        if "ready" not in ready:
            self.close()
            raise ForkerError(f"the server forker answered {ready!r} instead of ready")

    def _read(self) -> None:
        """The forker's messages: answers to this process's requests, and servers' ends."""
        while True:
            try:
                data = self.sock.recv(MESSAGE_BYTES)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            if "exited" in message:
                with self.exits:
                    server = self.servers.pop(message["exited"], None)
                    if server is None:
                        self.ended_early[message["exited"]] = message["status"]
                if server is not None:
                    server.ended(message["status"])
            else:
                self.answers.put(message)
        # the forker is gone: so is every server it forked (it ends them first, or they die with it)
        for server in list(self.servers.values()):
            server.ended(-signal.SIGKILL)
        self.servers.clear()
        self.answers.put({"failed": "the server forker exited" + self._stderr_tail()})

    def _stderr_tail(self) -> str:
        if self.process is None or self.process.poll() is None or self.process.stderr is None:
            return ""
        text = self.process.stderr.read().decode(errors="replace").strip()
        return f" (status {self.process.returncode}): {text[-500:]}" if text else f" (status {self.process.returncode})"

    def _answer(self, deadline_s: float) -> dict:
        try:
            return self.answers.get(timeout=deadline_s)
        except queue.Empty:
            pid = self.process.pid if self.process is not None else os.getppid()
            raise ForkerError(f"the server forker (pid {pid}) did not answer within {deadline_s} s") from None

    def spawn(self, argv: list[str], program: str = "server", cwd: str | None = None,
              env: dict[str, str] | None = None) -> ForkedProcess:
        """Fork a child running ``python -m harness.server ARGV`` (``program="server"``) or
        ``python -m harness ARGV`` (``"harness"``), in ``cwd`` with ``env`` (None: the forker's)."""
        request = json.dumps({"argv": argv, "program": program, "cwd": cwd, "env": env}).encode()
        if program not in PROGRAMS or len(request) > MESSAGE_BYTES:
            raise ForkerError(f"cannot fork {program!r} with {len(request)} bytes of arguments and environment")
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        stdin = os.open(os.devnull, os.O_RDONLY)
        try:
            with self.lock:
                try:
                    socket.send_fds(self.sock, [request], [stdin, out_write, err_write])
                except OSError as exc:
                    raise ForkerError(f"the server forker is gone: {exc}") from None
                finally:
                    for fd in (stdin, out_write, err_write):
                        os.close(fd)
                answer = self._answer(START_DEADLINE_S)
                if "started" not in answer:
                    raise ForkerError(answer.get("failed", repr(answer)))
                server = ForkedProcess(answer["started"], out_read, err_read, argv)
                with self.exits:
                    status = self.ended_early.pop(server.pid, None)
                    if status is None:
                        self.servers[server.pid] = server
                if status is not None:  # its end came before we took its start
                    server.ended(status)
                return server
        except BaseException:
            for fd in (out_read, err_read):
                try:
                    os.close(fd)
                except OSError:
                    pass  # already owned by a ForkedProcess's files
            raise

    def close(self) -> None:
        """Close our end: the forker ends its servers and exits; wait for it (bounded). Attached
        (``process`` None): the forker ends the servers it forked for us, and serves on."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self.process is None:
            self.reader.join(timeout=STOP_GRACE_S)
            return
        try:
            self.process.wait(timeout=2 * STOP_GRACE_S + 1)  # its servers' SIGTERM, then SIGKILL
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_GRACE_S)
        self.reader.join(timeout=STOP_GRACE_S)
        if self.process.stderr is not None:
            self.process.stderr.close()


_forker: Forker | None = None
_forker_pid = 0  # the process that started it (a fork of ours starts its own)
_enabled = False
_lock = threading.Lock()


def use_forker(on: bool = True) -> bool:
    """Fork servers from one forker in this process from now on (where ``available()``), or
    no longer (``on=False``: a forker already started runs on until ``stop_forker()``).
    Returns whether it was on before."""
    global _enabled
    before, _enabled = _enabled, on and available()
    return before


def forker() -> Forker | None:
    """This process's forker, started at the first call; None unless ``use_forker()``."""
    global _forker, _forker_pid
    if not _enabled:
        return None
    with _lock:
        if _forker is None or _forker_pid != os.getpid() or (_forker.process is not None
                                                              and _forker.process.poll() is not None):
            _forker, _forker_pid = Forker(), os.getpid()
        return _forker


def attach(fd: int) -> None:
    """In a child the forker forked with a socket of its own on ``fd``: fork servers through it
    from now on (``use_forker``)."""
    global _forker, _forker_pid, _enabled
    with _lock:
        _forker, _forker_pid, _enabled = Forker(socket.socket(fileno=fd)), os.getpid(), True


def stop_forker() -> list[int]:
    """End this process's forker, if it started one, and the servers it still ran:
    returns their pids (servers someone left running; it ends them)."""
    global _forker
    left: list[int] = []
    with _lock:
        if _forker is not None and _forker_pid == os.getpid():
            left = sorted(pid for pid, server in _forker.servers.items() if server.returncode is None)
            _forker.close()
        _forker = None
    return left


atexit.register(stop_forker)


# --- the forker's side ------------------------------------------------------------------------------------------


def preload() -> None:
    """Import what every server imports, so that each fork starts with it: the server
    (asyncio, h11, ssl) and uvloop where installed. What only some use (HTTPS
    certificates, HTTP/2, psutil) each imports itself, as a server started as its own
    interpreter does: preloaded, they cost ~40 ms more at the forker's start, for a
    suite of one experiment too."""
    from .main import main  # noqa: F401
    try:
        import uvloop  # noqa: F401  (--loop auto takes it where installed)
    except ImportError:
        pass


def serve(sock: socket.socket) -> None:
    """Fork a child per request on ``sock`` (or on a forked harness run's own socket) and report
    each one's end to whoever asked for it, until ``sock``'s other end closes: then end them all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the servers themselves; the caller ends us
    preload()
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, the caller's socket)
    killing: dict[int, float] = {}  # pid -> when SIGKILL follows the SIGTERM (a gone run's servers)
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ, "caller")
        sock.send(json.dumps({"ready": os.getpid()}).encode())
        while True:
            timeout = max(0.0, min(killing.values()) - time.monotonic()) if killing else None
            for key, _ in sel.select(timeout):
                if key.data == "caller":
                    caller = key.fileobj
                    try:
                        message, fds, _, _ = socket.recv_fds(caller, MESSAGE_BYTES, 3)
                    except OSError:  # ECONNRESET: it closed with a message of ours unread (a run killed): its end
                        message, fds = b"", []
                    if message:
                        _fork(caller, sel, children, json.loads(message), fds)
                    elif caller is sock:
                        _end_all({fd: pid for fd, (pid, _) in children.items()})
                        return
                    else:  # a forked run ended: its servers end too
                        sel.unregister(caller)
                        caller.close()
                        for pid, asker in children.values():
                            if asker is caller:
                                os.kill(pid, signal.SIGTERM)
                                killing[pid] = time.monotonic() + STOP_GRACE_S
                else:
                    pid, caller = children.pop(key.fd)
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    _, status = os.waitpid(pid, 0)
                    killing.pop(pid, None)
                    _tell(caller, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})
            for pid, when in list(killing.items()):
                if when <= time.monotonic():  # not reaped yet (its pidfd is unread): the pid is still its own
                    os.kill(pid, signal.SIGKILL)
                    del killing[pid]


def _fork(caller: socket.socket, sel: selectors.BaseSelector, children: dict[int, tuple[int, socket.socket]],
          request: dict, fds: list[int]) -> None:
    program = request.get("program", "server")
    try:  # imported here, once, so that every child starts with it (the server is preloaded already)
        importlib.import_module(PROGRAMS[program])
    except Exception as exc:
        for fd in fds:
            os.close(fd)
        _tell(caller, {"failed": f"cannot run {program!r}: {exc!r}"})
        return
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        _tell(caller, {"failed": f"a request came with {len(fds)} file descriptors, not 3"})
        return
    # a harness run is a caller in turn: a socket pair of its own, ours registered before it can ask
    pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) if program != "server" else None
    # what the forker holds now is never garbage to a child: its collections skip it (a forked run's full
    # collection walked every module the forker imported, writing to each object's header: a page copied each)
    gc.freeze()
    try:
        pid = os.fork()
    except OSError as exc:
        _tell(caller, {"failed": f"fork: {exc}"})
        pid = -1
    if pid == 0:
        _run_child(request, fds, pair[1].fileno() if pair is not None else None)  # never returns
    for fd in fds:
        os.close(fd)
    if pair is not None:
        pair[1].close()
        if pid > 0:
            sel.register(pair[0], selectors.EVENT_READ, "caller")
        else:
            pair[0].close()
    if pid > 0:
        pidfd = os.pidfd_open(pid)
        children[pidfd] = (pid, caller)
        sel.register(pidfd, selectors.EVENT_READ, "child")
        _tell(caller, {"started": pid})


def _tell(caller: socket.socket, message: dict) -> None:
    """A message to a caller; one that is gone (a run that ended first) is not told."""
    if caller.fileno() < 0:
        return
    try:
        caller.send(json.dumps(message).encode())
    except OSError:
        pass  # its end closed: its EOF comes next, and ends what it asked for


def _run_child(request: dict, fds: list[int], forker_fd: int | None) -> None:
    """In the forked child: stdin, stdout and stderr from the request, its own socket to the forker
    on fd 3 (a harness run), nothing else of the forker's, the caller's working folder and
    environment where given, then the program's main."""
    code = 1
    program = request.get("program", "server")
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        if forker_fd is not None:
            os.dup2(forker_fd, 3)
        os.closerange(3 if forker_fd is None else 4, os.sysconf("SC_OPEN_MAX"))  # the forker's sockets and pidfds
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if forker_fd is not None:  # the importable module's state, not this __main__'s (python -m runs a copy)
            importlib.import_module("harness.server.forker").attach(3)
        if request.get("cwd") is not None:
            os.chdir(request["cwd"])
            sys.path[0] = os.getcwd()  # python -m puts the working folder first: a user's module is found there
        if request.get("env") is not None:
            os.environ.clear()
            os.environ.update(request["env"])
        module = importlib.import_module(PROGRAMS[program])
        sys.argv = [module.__file__ or program, *request["argv"]]
        code = module.main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            if program != "server":  # a harness run's exit handlers (a forker of its own, say); a server has none
                atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _end_all(servers: dict[int, int]) -> None:
    """The caller is gone: SIGTERM every server, SIGKILL any left after STOP_GRACE_S, reap them all."""
    for pid in servers.values():
        os.kill(pid, signal.SIGTERM)
    waiting = dict(servers)
    with selectors.DefaultSelector() as sel:
        for pidfd in waiting:
            sel.register(pidfd, selectors.EVENT_READ)
        for signum in (None, signal.SIGKILL):
            if signum is not None:
                for pid in waiting.values():
                    os.kill(pid, signum)
            deadline = time.monotonic() + STOP_GRACE_S
            while waiting and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    sel.unregister(key.fd)
                    os.waitpid(waiting.pop(key.fd), 0)
                    os.close(key.fd)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
