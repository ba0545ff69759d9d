"""Where each socket was opened: the line of the code that used the HTTP library
(outside the standard library, installed packages and the harness; a catalog
variant's own line counts as such code), and the library call it made.

``recording()`` wraps ``socket.socket.connect`` and ``connect_ex`` while it is
entered (nested entries share one wrapper), and ``listen``, to know the ports of
this process's own servers (``listened_ports``). Each connect notes its site under
the socket's local address (``ip:port``, as ``owned.OwnedSocket.local``), so
the sockets a sampler reads can be matched to it. Cost: ~10-30 us a connection
(a walk of the caller's stack, classifying each file once).
"""
from __future__ import annotations

import os
import site
import socket
import sys
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

MOST_SITES = 100_000  # sites kept; the oldest go first (a long run opens and closes many)
_HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CATALOG = os.path.join(_HARNESS, "clients") + os.sep


class Site(NamedTuple):
    """``file:line in function``, and ``via``: the library call made there (or None)."""

    file: str
    line: int
    function: str
    via: str | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}" + (f" (via {self.via})" if self.via else "")


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots |= set(getattr(site, "getsitepackages", lambda: [])()) | {site.getusersitepackages()}
    return tuple(sorted({os.path.abspath(r) + os.sep for r in roots if r}, key=len, reverse=True))  # longest first


_ROOTS = _library_roots()
_kind: dict[str, str] = {}  # file -> "library" | "harness" | "user"


def _classify(filename: str) -> str:
    kind = _kind.get(filename)
    if kind is None:
        path = os.path.abspath(filename)
        if path.startswith(_CATALOG):
            kind = "user"  # a catalog variant's own line is the code that uses the library
        elif path.startswith(_HARNESS):
            kind = "harness"
        elif filename.startswith("<") or path.startswith(_ROOTS):
            kind = "library"
        else:
            kind = "user"
        _kind[filename] = kind
    return kind


def _short(filename: str) -> str:
    """A library file as its package path (``requests/sessions.py``), a user's relative to the working folder."""
    path = os.path.abspath(filename)
    if path.startswith(_HARNESS):  # a catalog variant: named within the package
        return "harness/" + path[len(_HARNESS):]
    for root in _ROOTS:
        if path.startswith(root):
            return path[len(root):]
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def site_of_caller(depth: int = 2) -> Site | None:
    """The site of the code that called into a library ``depth`` frames up; None if all is library."""
    frame = sys._getframe(depth)
    via = None
    while frame is not None:
        code = frame.f_code
        kind = _classify(code.co_filename)
        if kind == "user":
            return Site(_short(code.co_filename), frame.f_lineno, code.co_name, via)
        if kind == "library":
            via = f"{_short(code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class _Recorder:
    def __init__(self) -> None:
        self.sites: dict[str, Site] = {}
        self.listened: set[int] = set()  # ports this process listened on while recording
        self.lock = threading.Lock()
        self.depth = 0
        self.original: tuple | None = None

    def note(self, sock: socket.socket) -> None:
        try:
            local = sock.getsockname()
        except OSError:
            return
        if not isinstance(local, tuple) or not local[1]:
            return
        where = site_of_caller(3)
        if where is None:
            return
        key = f"[{local[0]}]:{local[1]}" if ":" in local[0] else f"{local[0]}:{local[1]}"
        with self.lock:
            self.sites[key] = where
            if len(self.sites) > MOST_SITES:
                del self.sites[next(iter(self.sites))]


_RECORDER = _Recorder()


def _connect(self: socket.socket, address) -> None:
    try:
        return _RECORDER.original[0](self, address)  # type: ignore[index]
    finally:
        _RECORDER.note(self)  # also for a non-blocking connect under way (BlockingIOError)


def _connect_ex(self: socket.socket, address) -> int:
    try:
        return _RECORDER.original[1](self, address)  # type: ignore[index]
    finally:
        _RECORDER.note(self)


def _listen(self: socket.socket, *backlog) -> None:
    _RECORDER.original[2](self, *backlog)  # type: ignore[index]
    try:
        local = self.getsockname()
    except OSError:
        return
    if isinstance(local, tuple):
        with _RECORDER.lock:
            _RECORDER.listened.add(local[1])


@contextmanager
def recording() -> Iterator[dict[str, Site]]:
    """Note the site of every TCP connect in this process while entered; yields the
    sites by local address (``ip:port``)."""
    with _RECORDER.lock:
        if _RECORDER.depth == 0:
            _RECORDER.original = (socket.socket.connect, socket.socket.connect_ex, socket.socket.listen)
            socket.socket.connect, socket.socket.connect_ex = _connect, _connect_ex  # type: ignore[method-assign]
            socket.socket.listen = _listen  # type: ignore[method-assign]
        _RECORDER.depth += 1
    try:
        yield _RECORDER.sites
    finally:
        with _RECORDER.lock:
            _RECORDER.depth -= 1
            if _RECORDER.depth == 0 and _RECORDER.original is not None:
                (socket.socket.connect, socket.socket.connect_ex,  # type: ignore[method-assign]
                 socket.socket.listen) = _RECORDER.original
                _RECORDER.original = None
                _RECORDER.listened.clear()  # a port once listened on may come back as a client's


def listened_ports() -> set[int]:
    """The ports this process has listened on while recording: an accepted socket's local port is one."""
    with _RECORDER.lock:
        return set(_RECORDER.listened)


def site_for(local: str) -> Site | None:
    """The site noted for a socket's local address (``ip:port``), if any."""
    return _RECORDER.sites.get(local)
