"""Start the slow server in a child process and stop it, from the parent's side.

Modelled on urllib3's dummyserver: the child binds port 0 and reports its port;
the parent waits for that line with a deadline while checking the child lives;
teardown is terminate -> wait -> kill, and a survivor is an error.
"""
from __future__ import annotations

import collections
import http.client
import json
import selectors
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

from .forker import ForkedProcess, ForkerError, forker
from .tls import Certificates, client_context

# A server starting gives up once it used no CPU for START_QUIET_S: a cold interpreter importing asyncio, h11 and
# psutil takes ~0.3 s, and even a starved one gets some CPU within a second. While it keeps using CPU it is given
# up to START_MOST_S: in a loaded soak a new interpreter importing aiohttp (a bench peer) took more than 10 s.
START_QUIET_S, START_MOST_S = 10.0, 60.0
STOP_GRACE_S = 5.0  # SIGTERM closes every connection and exits in ~0.1 s; 5 s before SIGKILL
STDERR_LINES_KEPT = 200


STARTED: list[tuple[str, int]] = []  # (host, port) of every server this process started: for leak checks


class ServerError(RuntimeError):
    """The server could not be started, died, or would not stop."""


@dataclass
class ServerProcess:
    """A running ``python -m harness.server``; use as a context manager.

    ``host`` and ``port`` are what the server reported once listening.
    """

    delay: float
    host: str = "127.0.0.1"
    track_interval: float = 5.0
    extra_args: tuple[str, ...] = ()
    loop: str = "auto"  # the server's event loop (--loop): uvloop where installed
    parser: str = "auto"  # what reads requests (--parser): httptools for plain heads where installed, else h11
    tls: Certificates | None = None  # HTTPS with these (--cert, --key); whoever made them removes them
    port: int = 0
    pid: int = 0
    own_ports: set[int] = field(default_factory=set)
    stats_connections: int = 0  # connections this process opened for /stats
    _stats_conn: http.client.HTTPConnection | None = field(default=None, repr=False)
    _stats_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _proc: subprocess.Popen | ForkedProcess | None = field(default=None, repr=False)
    _stderr: collections.deque = field(default_factory=lambda: collections.deque(maxlen=STDERR_LINES_KEPT), repr=False)
    _stderr_thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    def command(self) -> list[str]:
        """The child's command line; it must print one JSON line with its ``port`` once listening."""
        return [
            sys.executable, "-m", "harness.server",
            "--host", self.host, "--port", "0",
            "--delay", repr(self.delay), "--track-interval", repr(self.track_interval), "--loop", self.loop,
            "--parser", self.parser,
            *(("--cert", str(self.tls.cert), "--key", str(self.tls.key)) if self.tls else ()),
            *self.extra_args,
        ]

    def start(self) -> ServerProcess:
        """Start the server (forked from this process's forker after ``use_forker()``, else a new
        interpreter) and wait for its ready line; raises ServerError if it fails to listen."""
        # only the slow server itself is forked: a subclass with a command of its own (a peer) runs that program
        server_forker = forker() if type(self).command is ServerProcess.command else None
        if server_forker is not None:
            try:
                self._proc = server_forker.spawn(self.command()[3:])  # the arguments after "-m harness.server"
            except ForkerError as exc:
                raise ServerError(f"could not fork a server: {exc}") from None
        else:
            # the slow server stops when its stdin ends: this process holds the other end, so the server ends
            # when it does, however (SIGKILL included: a killed run once left its server to init)
            command = self.command() + (["--until-stdin-closes"] if type(self).command is ServerProcess.command else [])
            self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          stdin=subprocess.PIPE)
        self.pid = self._proc.pid
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name=f"server-{self.pid}-stderr", daemon=True)
        self._stderr_thread.start()
        try:
            info = self._wait_ready(START_QUIET_S, START_MOST_S)
        except BaseException:
            self.stop()
            raise
        self.port = int(info["port"])
        STARTED.append((self.host, self.port))
        return self

    def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip("\n"))

    def _wait_ready(self, quiet_s: float, most_s: float) -> dict:
        """The child's ready line, waited for while it makes progress: it fails once the child
        used no CPU for ``quiet_s`` (stuck), or after ``most_s`` in all. Its CPU time is read
        every 0.1 s (/proc, ~20 us)."""
        assert self._proc is not None and self._proc.stdout is not None
        started = last_progress = time.monotonic()
        cpu_s = -1.0
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                try:
                    used = sum(psutil.Process(self.pid).cpu_times()[:2])
                except psutil.Error:  # gone: its exit is told below
                    used = cpu_s
                if used > cpu_s:
                    cpu_s, last_progress = used, now
                if now - last_progress >= quiet_s:
                    raise ServerError(f"server pid {self.pid} used no CPU for {quiet_s:g} s and did not report its "
                                      f"port ({now - started:.1f} s after its start){self.tail()}")
                if now - started >= most_s:
                    raise ServerError(f"server pid {self.pid} did not report its port within {most_s:g} s, "
                                      f"though busy ({cpu_s:.1f} s of CPU){self.tail()}")
                if sel.select(timeout=0.1):
                    line = self._proc.stdout.readline()
                    if line:
                        try:
                            return json.loads(line)
                        except ValueError:
                            raise ServerError(f"server printed {line!r} instead of its JSON ready line") from None
                if self._proc.poll() is not None:
                    self._join_stderr()
                    raise ServerError(f"server exited with status {self._proc.returncode} before listening{self.tail()}")

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stats(self) -> dict:
        """``GET /stats``: the server's counters (see ``_get``)."""
        return self._get("/stats")

    def stall_handshakes(self, count: int) -> dict:
        """``GET /stall-handshakes``: the next ``count`` TLS handshakes are never answered."""
        return self._get(f"/stall-handshakes?next={count}")

    def hold(self, until: int, most_s: float, then_s: float | None = None) -> dict:
        """``GET /hold``: the next answers wait until ``until`` requests are in flight at
        once, or ``most_s`` seconds; ``holds_reached`` in ``/stats`` says which came first.
        With ``then_s``, once reached, answers come ``then_s`` after their request until
        ``most_s`` is over."""
        return self._get(f"/hold?until={until}&most={most_s:.3f}" + (f"&then={then_s}" if then_s is not None else ""))

    def _get(self, path: str) -> dict:
        """GET ``path`` on the harness's own kept-alive connection (~0.3 ms; thread-safe).

        One connection serves every call, so the server's counters can be read
        after it stopped accepting, and few sockets of the harness's own are
        made. Its local port is added to ``own_ports`` (samplers leave it out),
        and ``stats_connections`` counts the connections opened for it, so that
        ``connections_accepted`` can be told apart from the harness's own. A
        connection the server closed (``--idle-close``) is opened again, once.
        """
        with self._stats_lock:
            for attempt in (1, 2):
                if self._stats_conn is None:
                    self._stats_conn = self._own_connection()
                try:
                    self._stats_conn.request("GET", path)
                    response = self._stats_conn.getresponse()
                    body = response.read()
                    if response.status != 200:
                        raise ServerError(f"server pid {self.pid}: {path} answered {response.status}: {body!r}")
                    return json.loads(body)
                except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionError) as exc:
                    self._close_stats()
                    if attempt == 2:
                        raise ServerError(f"server pid {self.pid}: {path} failed twice: {exc}") from None
                except BaseException:
                    self._close_stats()
                    raise
        raise AssertionError("unreachable")

    def _own_connection(self) -> http.client.HTTPConnection:
        """A connection whose local port is in ``own_ports`` before it connects: a
        sampler scanning meanwhile never counts it as the client's."""
        family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            self.own_ports.add(sock.getsockname()[1])
            sock.settimeout(5)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        if self.tls is not None:
            try:
                sock = client_context(self.tls.ca).wrap_socket(sock, server_hostname=self.host)  # type: ignore[union-attr]
            except BaseException:
                sock.close()
                raise
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        conn.sock = sock
        self.stats_connections += 1
        return conn

    def _close_stats(self) -> None:
        if self._stats_conn is not None:
            self._stats_conn.close()
            self._stats_conn = None

    def stderr_text(self) -> str:
        return "\n".join(self._stderr)

    def tail(self, lines: int = 20) -> str:
        tail = list(self._stderr)[-lines:]
        return ("; server stderr:\n" + "\n".join(tail)) if tail else ""

    def _join_stderr(self) -> None:
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=STOP_GRACE_S)

    def stop(self) -> int | None:
        """terminate -> wait -> kill; raise ServerError if the process survives."""
        proc = self._proc
        if proc is None:
            return None
        with self._stats_lock:
            self._close_stats()
        try:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    try:
                        proc.wait(timeout=STOP_GRACE_S)
                    except subprocess.TimeoutExpired:
                        raise ServerError(f"server pid {proc.pid} survived SIGKILL") from None
        except BaseException:
            if proc.poll() is None:  # interrupted while stopping it: never leave it behind
                proc.kill()
                proc.wait(timeout=STOP_GRACE_S)
            raise
        finally:
            self._join_stderr()
            for stream in (getattr(proc, "stdin", None), proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        return proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
