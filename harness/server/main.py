"""``python -m harness.server``: the slow server as a program.

The Python counterpart of the seed's slow server (``protocol.py``). Once
listening it prints exactly one JSON line on stdout,
``{"host": ..., "port": ..., "pid": ...}``; everything else goes to stderr.

Per-request overrides in the query string: ``delay=S`` waits S seconds instead
of ``--delay``; ``fault=NAME`` (or ``fail=reset``) misbehaves as ``--fault``
says. Faults for the whole server: ``--fault`` (every ``--fault-every``-th
request), ``--idle-close S``, ``--stop-accepting-after N`` (see ``--help``).
``GET /stats`` answers at once with the server's counters as JSON. ``--tls`` serves
HTTPS (and HTTP/2 by ALPN) with a CA made at start, named in the ready line as
``"ca"``; ``--cert``/``--key`` with a certificate of your own.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.util
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..limits import raise_open_files_limit
from ..values import (MAX_DELAY_S, OneLineParser, OptionError, UsageError, argparse_type, at_most, non_negative_float,
                      port, positive_float)
from ..values import SERVER_LOOPS as LOOPS
from .faults import FAULT_FLAG, FAULTS, KNOBS, Faults, fault_help
from .protocol import HEADER_TIMEOUT_S, PARSERS, SlowServer
from .workers import MAX_WORKERS, Serving, cores

STDIN_FD = 0

if TYPE_CHECKING:
    from .protocol import SlowHTTPConnection
    from .shared import Shared
    from .tls import Certificates


def http2_session(connection: SlowHTTPConnection) -> Any:
    """The HTTP/2 session of a connection that chose it (``http2.H2Session``), imported at
    the first one: a server that never meets HTTP/2 starts ~10 ms of CPU sooner."""
    from .http2 import H2Session

    return H2Session(connection)


def http2_available() -> bool:
    """Whether the h2 library is installed (without it: HTTP/1.1 only, no ALPN h2, no h2c)."""
    return importlib.util.find_spec("h2") is not None


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m harness.server", description="The slow server: every request waits "
                           "--delay seconds, then gets 200 with a short body, on a connection kept alive.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=argparse_type(port), default=0,
                        help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--delay", type=argparse_type(at_most(non_negative_float, MAX_DELAY_S)), default=20.0,
                        help=f"seconds before each answer (default 20, at most {MAX_DELAY_S:g}; ?delay=S per request)")
    parser.add_argument("--track-interval", type=argparse_type(positive_float), default=5.0,
                        help="seconds between socket-count log lines (default 5)")
    parser.add_argument("--header-timeout", type=argparse_type(at_most(positive_float, MAX_DELAY_S)),
                        default=HEADER_TIMEOUT_S, metavar="S",
                        help=f"close a connection that has not sent a whole request head S seconds after it "
                             f"opened or began its request: 408 if it sent part of one (default {HEADER_TIMEOUT_S:g})")
    parser.add_argument("--loop", choices=LOOPS, default="auto",
                        help="the event loop: auto (uvloop where installed, else asyncio's own; the default), "
                             "asyncio, or uvloop (pip install uvloop)")
    parser.add_argument("--workers", type=argparse_type(workers_count), default=1, metavar="N",
                        help=f"processes serving the port, the kernel spreading connections among them (SO_REUSEPORT), "
                             f"sharing /stats, /hold and the faults; 'auto': one a CPU core (default 1; at most "
                             f"{MAX_WORKERS}; Linux)")
    parser.add_argument("--until-stdin-closes", action="store_true",
                        help="stop, as on SIGTERM, when stdin reaches its end: a parent that holds the other end of "
                             "a pipe ends the server however it ends itself, SIGKILL included (the harness does)")
    parser.add_argument("--parser", choices=PARSERS, default="auto",
                        help="what reads requests: auto (httptools, where installed, reads each request that is one "
                             "plain head; h11 the rest; the default), or h11 for every request")
    tls = parser.add_argument_group("HTTPS")
    tls.add_argument("--tls", action="store_true",
                     help="serve HTTPS with a certificate for 127.0.0.1, ::1 and localhost made at start by trustme; "
                          "the ready line gives the CA file clients must trust (removed at exit)")
    tls.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate chain (with --key)")
    tls.add_argument("--key", metavar="PEM", help="the private key of --cert")
    group = parser.add_argument_group("faults (on purpose)")
    group.add_argument(FAULT_FLAG, choices=[f.name for f in FAULTS], help=fault_help())
    for knob in KNOBS:
        group.add_argument(knob.flag, dest=knob.name, type=argparse_type(knob.parse), metavar=knob.metavar,
                           default=1 if knob.name == "every" else None, help=knob.help)
    return parser


def workers_count(text: str) -> int:
    """``--workers``: 1 to MAX_WORKERS, or ``auto``: one a CPU core this process may use."""
    if text == "auto":
        return cores()
    try:
        count = int(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a whole number or auto") from None
    if not 1 <= count <= MAX_WORKERS:
        raise OptionError(f"{text!r} must be from 1 to {MAX_WORKERS}, or auto")
    return count


def beyond_loopback(address: str) -> bool:
    """True for an address other machines may reach (0.0.0.0, ::, a LAN address);
    False for 127.0.0.0/8 and ::1."""
    return not ipaddress.ip_address(address.split("%")[0]).is_loopback


def tls_context(args: argparse.Namespace, made: Certificates | None) -> ssl.SSLContext | None:
    """The server's TLS context from ``--cert``/``--key`` or the certificates made for ``--tls``;
    raises UsageError naming the file that cannot be used."""
    if args.cert is None and args.key is None and made is None:
        return None  # plain HTTP; the imports below cost every plain server's start
    from .tls import server_context

    if args.cert is None and args.key is None:
        return server_context(made.cert, made.key)
    if args.cert is None or args.key is None:
        raise UsageError("--cert and --key go together: give both, or --tls alone for a certificate made at start")
    try:
        return server_context(args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise UsageError(f"--cert {args.cert!r} --key {args.key!r}: cannot be used: {reason}") from None


def listen_error(exc: OSError, args: argparse.Namespace) -> UsageError:
    """What to tell a user whose --host or --port cannot be listened on."""
    if isinstance(exc, socket.gaierror):
        return UsageError(f"--host {args.host!r}: not an address, nor a name this machine resolves ({exc.strerror})")
    if exc.errno == errno.EADDRINUSE:
        return UsageError(f"--port {args.port}: already in use on {args.host}")
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return UsageError(f"--host {args.host}: not an address of this machine")
    return UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}")


def check_host(args: argparse.Namespace) -> None:
    if not args.host.strip():
        raise UsageError(f"--host {args.host!r}: give an address to listen on, e.g. 127.0.0.1")


async def serve(args: argparse.Namespace, made: Certificates | None = None,
                worker: tuple[socket.socket, Shared, Serving] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; ``worker``: as one of ``--workers`` (its listening socket,
    the shared state, and what it calls once serving, ``workers.RunWorker``)."""
    check_host(args)
    faults = Faults(args.fault, *(getattr(args, knob.name) for knob in KNOBS))
    server = SlowServer(args.host, args.port, args.delay, args.track_interval, faults, args.header_timeout,
                        tls_context(args, made), http2_session if http2_available() else None, args.parser,
                        shared=worker[1] if worker is not None else None)
    try:
        await server.start(worker[0] if worker is not None else None)
    except OSError as exc:
        raise listen_error(exc, args) from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    first = worker is None or worker[1].me == 0  # with --workers, worker 0 speaks for the server
    if first and args.until_stdin_closes:
        stop_when_stdin_closes(loop, server.stop)  # with --workers, worker 0's end ends the others (workers.py)
    if first and beyond_loopback(server.address):
        print(f"harness.server: warning: listening on {server.address} (--host {args.host}), beyond loopback: "
              "any machine that can reach it can make it hold connections", file=sys.stderr, flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))  # --workers' worker 0 blocked them
    return_freed_heap()
    if worker is None:
        print(json.dumps(ready_line(args, server.port, made)), flush=True)
    else:
        worker[2](server)  # worker 0: the ready line once every worker serves; the others tell worker 0
    if first:
        server.log(f"listening on {'https' if server.tls else 'http'}://{args.host}:{server.port}, delay "
                   f"{args.delay} s" + (f", faults {faults}" if faults != Faults() else "")
                   + (f", {worker[1].workers} workers" if worker is not None else ""))
    tracker = asyncio.create_task(server.track()) if first else None
    await server.stopped.wait()
    if tracker is not None:
        await tracker
    server.log(
        f"{'' if worker is None else f'worker {worker[1].me} '}stopped: served={server.stats.requests_served} "
        f"hung up early={server.stats.hung_up_early} accepted={server.stats.connections_accepted}"
    )
    return 0


def stop_when_stdin_closes(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """Call ``stop`` once stdin reaches its end (its writer closed it, or died); what arrives before is
    discarded. A read a wakeup, none while the writer is quiet."""
    os.set_blocking(STDIN_FD, False)

    def readable() -> None:
        try:
            ended = not os.read(STDIN_FD, 4096)
        except BlockingIOError:
            return
        except OSError:  # not readable at all: as good as ended
            ended = True
        if ended:
            loop.remove_reader(STDIN_FD)
            stop()

    loop.add_reader(STDIN_FD, readable)


def return_freed_heap() -> bool:
    """Give the kernel back the heap's pages freed since the start (imports, flags, the listener): ~1.5 MB of an
    idle server's ~25 (PSS), a ms once. glibc's malloc_trim; elsewhere nothing (False)."""
    import ctypes

    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False


def ready_line(args: argparse.Namespace, port: int, made: Certificates | None) -> dict:
    """The one JSON line a started server prints: where it listens, its pid, and for HTTPS what to trust."""
    ready = {"host": args.host, "port": port, "pid": os.getpid()}
    if args.tls or args.cert is not None:  # HTTPS: what a client must trust (None: the user's own --cert)
        ready.update(tls=True, ca=str(made.ca) if made is not None else None)
    return ready


def serve_with_workers(args: argparse.Namespace, made: Certificates | None) -> int:
    """``--workers N`` above 1: bind N sockets on one port, fork a server on each (workers.py)."""
    from .workers import bind_all, serve_workers

    check_host(args)
    tls_context(args, made)  # a --cert that cannot be used: said once, before any fork
    try:
        listening = bind_all(args.host, args.port, args.workers)
    except OSError as exc:
        raise listen_error(exc, args) from None
    port = listening[0].getsockname()[1]

    def run_worker(sock: socket.socket, shared: Shared, serving: Serving) -> int:
        return _run(serve(args, made, (sock, shared, serving)), args.loop)

    return serve_workers(listening, run_worker, ready_line(args, port, made))




def _run(coroutine, loop: str):
    """Run ``coroutine`` on the event loop asked for (``--loop``)."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                coroutine.close()
                raise UsageError("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        raise_open_files_limit()
        if not args.tls or args.cert is not None or args.key is not None:
            return serve_with_workers(args, None) if args.workers > 1 else _run(serve(args), args.loop)
        from .tls import Certificates

        try:
            made = Certificates.make((args.host,))
        except RuntimeError as exc:  # no trustme
            raise UsageError(str(exc)) from None
        with made:  # removed however the server ends (SIGTERM and SIGINT end it through stop())
            return serve_with_workers(args, made) if args.workers > 1 else _run(serve(args, made), args.loop)
    except UsageError as exc:
        print(f"harness.server: error: {exc}", file=sys.stderr)
        return 2
