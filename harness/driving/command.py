"""Drive a client that is a command, in any language (``run --cmd "COMMAND"``).

The command runs its own loop, as the seed's programs do. ``fill`` puts in
``{url}``, ``{host}`` and ``{port}``; ``CommandProcess`` starts it in a process
group of its own and ends that group only (SIGTERM, then SIGKILL);
``ServerInFlight`` reads requests in flight from the server's counters, since
the harness does not see the command's requests. The scenario that samples and
judges it is ``harness.scenarios.command``.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from typing import IO

from ..values import UsageError
from ..server import ServerError, ServerProcess

PLACEHOLDERS = ("{url}", "{host}", "{port}")
STOP_GRACE_S = 3.0  # SIGTERM, then this long, then SIGKILL
TAIL_LINES = 20
SHELL = shutil.which("bash") or "/bin/sh"  # bash where there is one: loops people paste are written for it


def talks_to_the_server(template: str) -> bool:
    """True when a command names the slow server (``{url}``, ``{host}``, ``{port}``)."""
    return any(p in template for p in PLACEHOLDERS)


def fill(template: str, url: str, host: str, port: int) -> str:
    """The command with its placeholders filled in; raises UsageError if it has none.

    Only the three placeholders are replaced, so shell syntax such as ``${i}``
    passes through untouched.
    """
    if not template.strip():
        raise UsageError("an empty command")
    if not any(p in template for p in PLACEHOLDERS):
        raise UsageError(f"command {template!r}: use {{url}}, or {{host}} and {{port}}, so it talks to the slow server")
    return template.replace("{url}", url).replace("{host}", host).replace("{port}", str(port))


class _Tail:
    """Drains a pipe in a thread, keeping its last lines."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self.thread = threading.Thread(target=self._drain, args=(stream,), name=name, daemon=True)
        self.thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    def text(self) -> str:
        self.thread.join(timeout=STOP_GRACE_S)
        return "\n".join(self.lines)


class ServerInFlight:
    """The server's requests in flight and the most ever in flight at once (a connection
    counted from its accept: ``connecting`` + ``active_requests``), fetched once per
    sample (the recorder calls its window before and after each socket scan; the
    second call fetches). A sample's ``in_flight_peak`` is that all-time peak."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.calls = 0
        self.last = (0, 0)

    def window(self) -> tuple[int, int]:
        self.calls += 1
        if self.calls % 2 == 0:
            try:
                stats = self.server.stats()
                self.last = (stats["active_requests"] + stats["connecting"], stats["peak_in_flight"])
            except (OSError, ServerError, ValueError):
                pass  # the server is gone or busy: keep the last figures; its death is reported elsewhere
        return self.last


class CommandProcess:
    """A shell command in a process group of its own; ``stop()`` ends the group."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.proc = subprocess.Popen(command, shell=True, executable=SHELL, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout = _Tail(self.proc.stdout, "command-stdout")
        self.stderr = _Tail(self.proc.stderr, "command-stderr")
        self.stopped_by_harness = False

    def wait(self, timeout: float) -> bool:
        """True once the command has ended; waits at most ``timeout`` s."""
        try:
            self.proc.wait(timeout=max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)  # the group we created: pgid == our child's pid
        except ProcessLookupError:
            pass

    def stop(self) -> int:
        """SIGTERM to the command's group, then SIGKILL after ``STOP_GRACE_S``; returns its status."""
        if self.proc.poll() is None:
            self.stopped_by_harness = True
            self._signal_group(signal.SIGTERM)
            if not self.wait(STOP_GRACE_S):
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=STOP_GRACE_S)
        self._signal_group(signal.SIGKILL)  # children the shell left behind, still in our group
        return self.proc.returncode
