"""Interrupt a harness command mid-experiment and collect what it left."""
from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from .waiting import alive

ROOT = Path(__file__).resolve().parent.parent
EXIT_DEADLINE_S = 15  # stopping servers takes ~0.1 s each; 15 s covers a loaded machine


@dataclass
class Interrupted:
    status: int | None
    stderr: str
    children: list  # psutil.Process of every descendant, taken just before the signal
    servers: set  # (address, port) of the remote ends of its TCP sockets then: the experiment servers


def interrupt(args: list[str], when: Callable[[list[str]], bool], sig: signal.Signals) -> Interrupted:
    """Run ``python -m harness ARGS``; once ``when(lines so far)`` (a line, not a time),
    send ``sig``; wait for it to exit (bounded) and return what is known."""
    # faulthandler: a run still there after the deadline is sent SIGABRT, and prints where each of its threads is
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "harness", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if when(lines):
                break
        me = psutil.Process(proc.pid)
        children = me.children(recursive=True)
        servers = {(c.raddr.ip, c.raddr.port) for c in me.net_connections(kind="tcp") if c.raddr}
        proc.send_signal(sig)
        try:  # communicate, not wait: what it prints while it stops must not fill a pipe nobody reads and block it
            _, stderr = proc.communicate(timeout=EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # its threads' stacks to stderr, then it ends
            try:
                _, stderr = proc.communicate(timeout=EXIT_DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
            raise AssertionError(f"still running {EXIT_DEADLINE_S} s after {sig.name}; it printed:\n{stderr[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Interrupted(proc.returncode, stderr, children, servers)


def still_running(children: list) -> list:
    return [c for c in children if alive(c)]
