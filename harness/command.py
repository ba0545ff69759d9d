"""Judge a client that is a command, in any language: ``run --cmd "COMMAND"``.

The command runs its own loop, as the seed's programs do. The harness fills in
``{url}``, ``{host}`` and ``{port}``, starts it in a process group of its own,
samples its sockets to the server until it ends by itself or ``duration`` runs
out (then SIGTERM, then SIGKILL, to that group only), and judges the time series
(``harness.series_verdict``). Requests and new connections are counted by the
server; in flight, by the server's active requests.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from typing import IO

from .experiment import ExperimentError, ExperimentResult, Progress
from .options import Settings, UsageError
from .results import write_result
from .sampler import SeriesRecorder, SocketCounter
from .scenarios import churn_gate
from .series_verdict import UNDECIDED, SeriesTrend, judge_series
from .server_process import ServerError, ServerProcess
from .verdict import combine

PLACEHOLDERS = ("{url}", "{host}", "{port}")
STOP_GRACE_S = 3.0  # SIGTERM, then this long, then SIGKILL
TAIL_LINES = 20
PROGRESS_EVERY_S = 1.0
EXTEND_FRACTION = 0.5  # an undecided verdict at --duration samples this much longer, once
SHELL = shutil.which("bash") or "/bin/sh"  # bash where there is one: loops people paste are written for it


def fill(template: str, url: str, host: str, port: int) -> str:
    """The command with its placeholders filled in; raises UsageError if it has none.

    Only the three placeholders are replaced, so shell syntax such as ``${i}``
    passes through untouched.
    """
    if not template.strip():
        raise UsageError("--cmd: an empty command")
    if not any(p in template for p in PLACEHOLDERS):
        raise UsageError(f"--cmd {template!r}: use {{url}}, or {{host}} and {{port}}, so it talks to the slow server")
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


class _ServerInFlight:
    """The server's active requests and the most ever active at once, fetched once
    per sample (the recorder calls its window before and after each socket scan;
    the second call fetches). A sample's ``in_flight_peak`` is that all-time peak."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.calls = 0
        self.last = (0, 0)

    def window(self) -> tuple[int, int]:
        self.calls += 1
        if self.calls % 2 == 0:
            try:
                stats = self.server.stats()
                self.last = (stats["active_requests"], stats["peak_active_requests"])
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


def measure_command(
    command: str,
    settings: Settings,
    server: ServerProcess,
    *,
    expect: str | None = None,
    progress: Progress = lambda line: None,
    name: str | None = None,
) -> ExperimentResult:
    """Run ``command`` against ``server`` for at most ``settings.duration`` s and judge
    its held sockets over time; write and return the result (incomplete if interrupted)."""
    filled = fill(command, server.url, server.host, server.port)
    result = ExperimentResult(name=name or "command", scenario="command", target=command,
                              settings=settings.as_dict(),
                              server={"host": server.host, "port": server.port, "pid": server.pid})
    counter = SocketCounter(server.host, server.port, server.own_ports, settings.sampler)
    in_flight = _ServerInFlight(server)
    recorder = SeriesRecorder(counter, settings.sample_interval, in_flight.window)
    started = time.monotonic()
    process: CommandProcess | None = None
    try:
        counter.ignore_existing_time_wait()
        before = server.stats()
        recorder.start()
        process = CommandProcess(filled)
        progress(f"started: {filled}")
        deadline = started + settings.duration
        next_progress = started + PROGRESS_EVERY_S
        extended = False
        while True:
            if process.wait(min(next_progress, deadline) - time.monotonic()):
                break
            now = time.monotonic()
            if not server.alive():
                raise ExperimentError("the slow server died while the command ran" + server.tail())
            if now >= deadline:
                if extended or _judge(recorder.samples).verdict != UNDECIDED:
                    break
                # not sure yet: sample longer, once, rather than guess
                extended, deadline = True, deadline + EXTEND_FRACTION * settings.duration
                progress(f"undecided after {now - started:.1f} s: sampling {EXTEND_FRACTION * settings.duration:.1f} s more")
                continue
            last = recorder.samples[-1] if recorder.samples else None
            if last is not None:
                progress(f"{now - started:5.1f} s: {last.held} sockets held, {last.time_wait} TIME_WAIT, "
                         f"{last.in_flight} requests in flight")
            next_progress = now + PROGRESS_EVERY_S
        ran_s = time.monotonic() - started
        ended_by_itself = process.proc.poll() is not None
        # what the command holds at its end: only while it is alive (exit closes every socket)
        final = recorder.sample("end") if not ended_by_itself else None
        final_snapshot = recorder.last
        status = process.stop()
        recorder.stop()
        alive_until = (final.t if final else ran_s - settings.sample_interval)
        samples = [s for s in recorder.samples if s.t <= alive_until]
        after = server.stats()
        requests = after["requests_served"] - before["requests_served"]
        stats_calls = after["stats_requests"] - before["stats_requests"]
        new = after["connections_accepted"] - before["connections_accepted"] - stats_calls
        stderr_tail = process.stderr.text()
        figures = {
            "command": filled, "exit_status": status, "stopped_by_harness": process.stopped_by_harness,
            "ran_s": round(ran_s, 3), "requests": requests, "requests_per_s": round(requests / ran_s, 2),
            "new_connections": new, "new_connections_per_request": round(new / requests, 4) if requests else 0.0,
            "time_wait": samples[-1].time_wait if samples else 0,
            "peak_held": max((s.held for s in samples), default=0),
            "peak_in_flight": after["peak_active_requests"],
            "hung_up_early": after["hung_up_early"] - before["hung_up_early"],
            "stdout_tail": process.stdout.text(), "stderr_tail": stderr_tail,
        }
        figures["time_wait_per_s"] = round(figures["time_wait"] / ran_s, 2)
        figures["time_wait_per_request"] = round(figures["time_wait"] / requests, 4) if requests else 0.0
        result.figures = figures
        result.samples = recorder.samples
        if requests == 0:
            raise ExperimentError(f"the command made no request to the server in {ran_s:.1f} s "
                                  f"(exit status {status}){_tail_note(stderr_tail)}")
        trend = _judge(samples)
        figures["extended"] = extended
        figures["floors"] = list(trend.floors)
        result.verdict = combine(expect, trend, churn_gate(settings, figures))  # type: ignore[arg-type]
        result.sockets_left = [(s.local_port, s.state) for s in (final_snapshot.sockets if final_snapshot else ())]
        result.complete = True
    except BaseException as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        try:
            if process is not None:
                process.stop()
        finally:
            recorder.stop()
            if not result.samples:
                result.samples = list(recorder.samples)
            result.duration_s = time.monotonic() - started
            result.server_stderr = server.stderr_text()
            write_result(result, settings.results_path)
    return result


def _judge(samples: list) -> SeriesTrend:
    return judge_series([s.t for s in samples], [s.held for s in samples], [s.in_flight_peak for s in samples])


def _tail_note(stderr: str) -> str:
    return f"; its stderr ends:\n{stderr}" if stderr.strip() else ""
