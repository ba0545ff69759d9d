"""The one runner: an experiment is described by one value (``Experiment``) and
run by one function (``run``), which returns a typed result and writes nothing.

``run`` checks the experiment, makes the client (failing fast, before a server
starts), starts a slow server per host (with the experiment's faults), runs the
scenario on them, stops them, and returns the ``ExperimentResult``. Every
exception that escapes ``run`` after measuring began carries what was measured
so far, marked incomplete (``measured_so_far(exc)``), so that a face can keep it.

The CLI, the pytest plugin's fixtures, the bench and ``experiments/`` all run
experiments through here; the report side (``harness.report``) writes them.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .clients import Variant, lookup, resolve, target_name
from .driving import CommandProcess, ExperimentResult, Progress, Run, fill
from .judging import VERDICTS
from .options import Settings, override
from .values import UsageError
from .sampling.owned import sockets_of
from .scenarios import COMMAND, SCENARIOS, SEVERAL_HOSTS, TCP_COUNT, WATCH, command, watch
from .sampling import sites
from .server import Certificates, ServerProcess, fault_args

RequestTarget = str | Callable[[str], object]
LOOPBACK = "127.0.0.1"


class ExperimentSpecError(UsageError):
    """An experiment described wrongly (exit status 2 in the CLI); the message names the bad value.
    (A target that names nothing raises ``harness.clients.TargetError``.)"""


def file_label(text: str) -> str:
    """``text`` made safe as a file name: letters, digits, ``-_.``; anything else ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


@dataclass(frozen=True)
class Experiment:
    """One experiment: what to drive, which scenario, with which settings, and
    the verdict expected.

    * ``target``: a catalog name, ``package.module:function``, or a function that
      makes one request to the URL it is given; or ``cmd``: a shell command with
      ``{url}`` (or ``{host}`` and ``{port}``), judged by its time series.
    * ``scenario``: a name in ``harness.scenarios.SCENARIOS`` (``tcp_count`` by
      default; ``command`` for a ``cmd``); ``params`` are its own arguments
      (``close_on_error`` takes ``failure="timeout"``).
    * ``hosts``: one slow server per address (several: ``tcp_count`` only);
      ``faults``: what those servers do wrong (``harness.server.faults``:
      ``fault="hang", every=5``, ``idle_close=0.3``, ...).
    * ``expect``: growth, plateau, or None (judge the checks alone).
    """

    target: RequestTarget | None = None
    cmd: str | None = None
    pid: int | None = None  # or a running process, watched (nothing is driven, no server started)
    scenario: str | None = None
    settings: Settings = field(default_factory=Settings)
    expect: str | None = None
    name: str | None = None
    hosts: tuple[str, ...] = (LOOPBACK,)
    faults: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pid is not None:
            if self.target is not None or self.cmd is not None:
                raise ExperimentSpecError("give a target, cmd=... or pid=..., one of them")
            try:
                sockets_of(self.pid)
            except ProcessLookupError:
                raise ExperimentSpecError(f"--pid {self.pid}: no such process") from None
            except PermissionError:
                raise ExperimentSpecError(f"--pid {self.pid}: not allowed to read its sockets (run as its user, "
                                          "or as root)") from None
            return
        if (self.target is None) == (self.cmd is None):
            raise ExperimentSpecError("give a target (a request function or name) or cmd=..., not both or neither")
        if self.cmd is not None and self.scenario == WATCH:  # a command that talks to what it likes, watched
            if not self.cmd.strip():
                raise ExperimentSpecError("an empty command")
        elif self.cmd is not None:
            fill(self.cmd, "http://127.0.0.1:1/", "127.0.0.1", 1)  # raises UsageError for a command without {url}
            if self.scenario not in (None, COMMAND):
                raise ExperimentSpecError(f"scenario={self.scenario!r}: a cmd is judged by the {COMMAND} scenario")
        else:
            lookup(self.target)  # type: ignore[arg-type]  # raises TargetError for a name that finds nothing
        if self.scenario is not None and self.cmd is None and self.scenario not in SCENARIOS:
            raise ExperimentSpecError(f"scenario={self.scenario!r}: not a scenario; scenarios are "
                                      + ", ".join(SCENARIOS))
        if self.expect is not None and self.expect not in VERDICTS:
            raise ExperimentSpecError(f"expect={self.expect!r}: expect {' or '.join(VERDICTS)} (or None)")
        if isinstance(self.hosts, str) or not self.hosts:
            raise ExperimentSpecError(f"hosts={self.hosts!r}: give a list of one or more addresses")
        if len(self.hosts) > 1 and self.scenario_name not in SEVERAL_HOSTS:
            raise ExperimentSpecError(f"{self.scenario_name} runs against one server; only "
                                      f"{', '.join(SEVERAL_HOSTS)} takes several hosts")
        try:
            fault_args(**self.faults)
        except ValueError as exc:
            raise ExperimentSpecError(str(exc)) from None

    @property
    def scenario_name(self) -> str:
        if self.pid is not None:
            return WATCH
        return self.scenario or (COMMAND if self.cmd is not None else TCP_COUNT)

    @property
    def target_name(self) -> str:
        if self.pid is not None:
            return f"pid {self.pid}"
        return self.cmd if self.cmd is not None else target_name(self.target)  # type: ignore[arg-type]

    @property
    def result_name(self) -> str:
        """The result's name and file stem: ``name``, or ``SCENARIO-TARGET``."""
        if self.name:
            return self.name
        if self.pid is not None:
            return f"{WATCH}-{self.pid}"
        if self.cmd is not None:
            return f"{WATCH}-command" if self.scenario == WATCH else COMMAND
        return f"{self.scenario_name}-{file_label(self.target_name)}"


_MEASURED = "experiment_result"  # the attribute an escaping exception carries the partial result in


def measured_so_far(exc: BaseException) -> ExperimentResult | None:
    """What an experiment had measured when ``exc`` escaped ``run`` (incomplete), if anything."""
    return getattr(exc, _MEASURED, None)


def run(experiment: Experiment, *, progress: Progress = lambda line: None,
        on_server: Callable[[ServerProcess], None] = lambda server: None) -> ExperimentResult:
    """Run ``experiment`` on slow servers of its own; return the result (nothing written).

    Costs about 2.5 s for ``tcp_count`` with the default options, at most
    ``settings.duration`` s (up to 2.5x while undecided: ``judging.sample_longer``) for a command. ``on_server`` is
    told of each server once started (to show its stderr on failure). Raises
    ExperimentSpecError / TargetError for a bad experiment before any server
    starts; ServerError, ExperimentError or KeyboardInterrupt while measuring,
    each carrying the partial result (``measured_so_far``).
    """
    settings = experiment.settings
    if experiment.scenario_name == WATCH:
        return _watch(experiment, progress)
    if not settings.tls and _speaks_http2(experiment.target):
        progress(f"{experiment.target_name} speaks HTTP/2, which clients negotiate over TLS: --tls on")
        experiment = replace(experiment, settings=override(settings, tls="on"))
    certificates = _certificates(experiment) if experiment.settings.tls else None
    try:
        with _trusting(certificates):
            return _run_on_servers(experiment, certificates, progress, on_server)
    finally:
        if certificates is not None:
            certificates.remove()


def _speaks_http2(target: object) -> bool:
    """A catalog variant made to speak HTTP/2 (``Variant.http2``)."""
    found = lookup(target) if isinstance(target, str) else None
    return isinstance(found, Variant) and found.http2


def _certificates(experiment: Experiment) -> Certificates:
    """A CA and a server certificate for ``--tls`` (trustme); ExperimentSpecError without trustme."""
    try:
        return Certificates.make(tuple(experiment.hosts))
    except RuntimeError as exc:
        raise ExperimentSpecError(str(exc)) from None


@contextmanager
def _trusting(certificates: Certificates | None) -> Iterator[None]:
    """While an HTTPS experiment runs, this process's SSL_CERT_FILE, REQUESTS_CA_BUNDLE and
    CURL_CA_BUNDLE name its CA, so a user's own request function trusts it as a command does;
    put back as they were after."""
    if certificates is None:
        yield
        return
    before = {name: os.environ.get(name) for name in certificates.environment()}
    os.environ.update(certificates.environment())
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_on_servers(experiment: Experiment, certificates: Certificates | None, progress: Progress,
                    on_server: Callable[[ServerProcess], None]) -> ExperimentResult:
    settings = experiment.settings
    client = None if experiment.cmd is not None else resolve(
        experiment.target, settings.delay, settings.idle_timeout,  # type: ignore[arg-type]
        str(certificates.ca) if certificates is not None else None)
    extra = fault_args(**experiment.faults)
    servers = [ServerProcess(delay=settings.delay, host=host, extra_args=extra, loop=settings.server_loop,
                             tls=certificates)
               for host in experiment.hosts]
    result = ExperimentResult(name=experiment.result_name, scenario=experiment.scenario_name,
                              target=experiment.target_name, settings=settings.as_dict())
    started = time.monotonic()
    try:
        try:
            with _measuring(result):
                for server in servers:
                    on_server(server)
                    server.start()
                first = servers[0]
                result.server = {"host": first.host, "port": first.port, "pid": first.pid, "url": first.url}
                if client is None:
                    command(first, settings, result, progress, experiment.expect, experiment.cmd, **experiment.params)
                else:
                    driven, client = client, None  # _drive closes it
                    _drive(driven, servers, experiment, result, progress)
        finally:
            try:
                if client is not None:
                    _close(client)
            finally:
                try:
                    for server in servers:
                        server.stop()
                finally:
                    result.server_stderr = "\n".join(s.stderr_text() for s in servers)
                    result.duration_s = time.monotonic() - started  # to a verdict, the servers stopped
    except BaseException as exc:
        if measured_so_far(exc) is None:  # interrupted once measured (stopping the servers): keep it all the same
            setattr(exc, _MEASURED, result)
        raise
    return result


@contextmanager
def _measuring(result: ExperimentResult) -> Iterator[None]:
    """Marks ``result`` complete, or keeps its error on the exception that escapes
    (``measured_so_far``); its duration either way."""
    started = time.monotonic()
    try:
        yield
        result.complete = True
    except BaseException as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        setattr(exc, _MEASURED, result)
        raise
    finally:
        result.duration_s = time.monotonic() - started


def _watch(experiment: Experiment, progress: Progress) -> ExperimentResult:
    result = ExperimentResult(name=experiment.result_name, scenario=WATCH, target=experiment.target_name,
                              settings=experiment.settings.as_dict())
    process = CommandProcess(experiment.cmd) if experiment.cmd is not None else None
    try:
        with _measuring(result):
            if process is not None:
                progress(f"started: {experiment.cmd} (pid {process.proc.pid})")
            watch(process.proc.pid if process is not None else experiment.pid,  # type: ignore[arg-type]
                  experiment.settings, result, progress, experiment.expect,
                  ended=(lambda: process.proc.poll() is not None) if process is not None else (lambda: False))
    finally:
        if process is not None:
            process.stop()
    return result


def _drive(client: Callable[[str], object], servers: list[ServerProcess], experiment: Experiment,
           result: ExperimentResult, progress: Progress) -> None:
    settings = experiment.settings
    run_ = Run(client, servers, settings.sample_interval, settings.sampler, deadline_s=settings.deadline)
    result.hosts = run_.hosts
    try:
        with run_, sites.recording() as opened:  # where each connection the client makes is opened
            SCENARIOS[experiment.scenario_name](run_, settings, result, progress, experiment.expect, **experiment.params)
            run_.confirm_traffic()
            # what the server counted (received, served, hung up early, TLS failures...): a request the client says
            # failed is explained by the server's side of it
            result.server["counted"] = run_.server_delta()
            left = {s.local_port for s in result.sockets_left}  # named only for those: a churning client opens 10^4
            by_port = {port: site for local, site in list(opened.items())
                       if (port := int(local.rsplit(":", 1)[1])) in left}
            result.sites = {s.local_port: str(by_port[s.local_port]) for s in result.sockets_left
                            if s.local_port in by_port}
    finally:
        result.samples = list(run_.recorder.samples)
        run_.close_client()


def _close(client: object) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()
