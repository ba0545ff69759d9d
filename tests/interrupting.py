"""Interrupt a harness command mid-experiment and collect what it left."""
from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

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
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
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
        status = proc.wait(timeout=EXIT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    return Interrupted(status, stderr, children, servers)


def still_running(children: list) -> list:
    return [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
