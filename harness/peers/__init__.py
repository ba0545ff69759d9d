"""Peer servers for the bench: other servers doing the slow server's job (answer
``ok\\n`` to every request after ``delay`` seconds, keep-alive), so that its
figures can be set beside theirs, measured in the same run.

* ``aiohttp``: an ``aiohttp.web`` server (``python -m harness.peers.aiohttp_server``);
* ``go``: a Go net/http server built from ``slow_server.go`` where ``go`` is installed.

Each is a ``ServerProcess`` (same ready line, same stop: terminate, wait, kill)
without the slow server's ``/stats``. Never imported by the harness's runs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..server import ServerError, ServerProcess

GO_SOURCE = Path(__file__).with_name("slow_server.go")
GO_BUILD_DEADLINE_S = 600  # a first build compiles net/http: minutes on 2 cores; later ones hit Go's build cache


@dataclass
class AiohttpPeer(ServerProcess):
    """``aiohttp.web``, one event loop, the same delay."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "harness.peers.aiohttp_server", "--delay", repr(self.delay)]


@dataclass
class GoPeer(ServerProcess):
    """Go's net/http (a goroutine a connection, every core), the same delay; ``binary`` from ``build_go``."""

    binary: str = ""

    def command(self) -> list[str]:
        return [self.binary, "-delay", repr(self.delay)]


def build_go(folder: str, source: Path = GO_SOURCE) -> str | None:
    """Build one Go file (``slow_server.go`` by default) into ``folder``, a program named
    after it; its path, or None without ``go``. Raises ServerError when the build fails."""
    go = shutil.which("go")
    if go is None:
        return None
    binary = os.path.join(folder, Path(source).stem)
    env = {**os.environ, "GO111MODULE": "off", "GOFLAGS": ""}
    done = subprocess.run([go, "build", "-o", binary, str(source)], capture_output=True, text=True, env=env,
                          timeout=GO_BUILD_DEADLINE_S)
    if done.returncode != 0:
        raise ServerError(f"go build {Path(source).name}: {done.stderr.strip()[-500:]}")
    return binary


def peer_folder() -> tempfile.TemporaryDirectory:
    """A folder for built peers, removed when closed."""
    return tempfile.TemporaryDirectory(prefix="harness-peers-")
