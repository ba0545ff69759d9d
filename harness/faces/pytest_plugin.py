"""The pytest plugin (entry point ``pytest11``): options, markers, header and
fixtures only.

Installing the package registers it in every pytest run. Options live in one
group; each help text is also its ini key's help; a ``LEAK_*`` environment
variable is the fallback. Experiments run through the runner
(``harness.runner``) and are written by the report (``harness.report``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ..clients import TargetError
from ..driving import ExperimentError, ExperimentResult
from ..options import OPTIONS, OptionError, Settings, UsageError, override, settings_from
from ..report import write_session
from ..runner import Experiment, file_label
from ..sampling import choose_backend
from ..server import ServerError, ServerProcess, fault_args
from .common import keep, run_and_write

SETTINGS_KEY = pytest.StashKey[Settings]()
RESULTS_KEY = pytest.StashKey[list]()
SERVERS_KEY = pytest.StashKey[list]()
REPORT_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leak-harness", "TCP connection leak experiments")
    for option in OPTIONS:
        help_text = f"{option.help} (default {option.default}; env {option.env})"
        group.addoption(option.flag, dest="leak_" + option.name, default=None, metavar=option.name.upper(), help=help_text)
        parser.addini(option.ini, help=help_text, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "experiment: a measured experiment on a client variant (starts its own slow server)")
    values, sources = {}, {}
    for option in OPTIONS:
        value, sources[option.name] = config.getoption("leak_" + option.name), option.flag
        if value is None:
            value, sources[option.name] = config.getini(option.ini) or None, f"{option.ini} (ini)"
        values[option.name] = value
    try:
        config.stash[SETTINGS_KEY] = settings_from(values, sources=sources)
    except OptionError as exc:
        raise pytest.UsageError(f"leak harness: {exc}") from None
    config.stash[RESULTS_KEY] = []


def pytest_report_header(config: pytest.Config) -> str:
    s = config.stash[SETTINGS_KEY]
    return (f"leak harness: delay={s.delay}s cycles={s.cycles} period={s.period}s extra-max={s.extra_max} "
            f"seed={s.seed} rounds={s.rounds or 'auto'}..{s.max_rounds} budget={s.budget} sample-interval={s.sample_interval}s "
            f"idle-timeout={s.idle_timeout}s max-churn={s.max_churn if s.max_churn is not None else 'off'} "
            f"sampler={s.sampler}{'' if s.sampler != 'auto' else ' (' + choose_backend('auto').name + ')'} "
            f"results-dir={s.results_dir}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        for server in item.stash.get(SERVERS_KEY, []):
            report.sections.append((f"slow server pid {server.pid} stderr", server.stderr_text() or "(empty)"))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    results = session.config.stash.get(RESULTS_KEY, [])
    if results:
        written: list = []
        keep(lambda: written.extend(write_session(results, session.config.stash[SETTINGS_KEY].results_path,
                                                  "experiments.png", "experiments of this run")),
             "the summary", written.append)
        session.config.stash[REPORT_KEY] = [f"table {written[0]}", written[1]] if len(written) == 2 else written


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    written = config.stash.get(REPORT_KEY, None)
    if written:
        terminalreporter.write_line("leak harness: " + "; ".join(written))


@pytest.fixture(scope="session")
def leak_settings(pytestconfig: pytest.Config) -> Settings:
    """The experiment options in force (command line > ini > LEAK_* env > default)."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture
def start_slow_server(request: pytest.FixtureRequest, leak_settings: Settings) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``start_slow_server(delay=None, host="127.0.0.1", header_timeout=None, **faults)``
    starts a fresh server (``header_timeout``: seconds, ``--header-timeout``).

    ``faults``: ``fault`` (a name in ``harness.server.FAULTS``) and the knobs of
    ``harness.server.KNOBS`` (``every``, ``idle_close``, ``stop_accepting_after``).
    Every server started is stopped at teardown (terminate -> wait -> kill);
    its stderr is attached to the report of a failing test.
    """
    started: list[ServerProcess] = request.node.stash.setdefault(SERVERS_KEY, [])

    def start(delay: float | None = None, host: str = "127.0.0.1", header_timeout: float | None = None,
              **faults) -> ServerProcess:
        extra = fault_args(**faults) + (("--header-timeout", str(header_timeout)) if header_timeout else ())
        server = ServerProcess(delay=leak_settings.delay if delay is None else delay, host=host, extra_args=extra)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        errors = []
        for server in started:
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others, then fail loudly
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def slow_server(start_slow_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A fresh slow server for this test, with the configured delay."""
    return start_slow_server()


@pytest.fixture
def record_experiment(pytestconfig: pytest.Config) -> Callable[[ExperimentResult], ExperimentResult]:
    """Adds a result to the run's summary table (written at the end of the session)."""

    def record(result: ExperimentResult) -> ExperimentResult:
        pytestconfig.stash[RESULTS_KEY].append(result)
        return result

    return record


@pytest.fixture
def run_experiment(request: pytest.FixtureRequest, leak_settings: Settings,
                   record_experiment: Callable[[ExperimentResult], ExperimentResult]
                   ) -> Callable[[Experiment], ExperimentResult]:
    """``run_experiment(Experiment(...))``: run it on servers of its own, write its
    results (also when interrupted), add it to the session's summary, and return
    it. Never fails the test by itself: the test asserts what it expects."""

    def run(experiment: Experiment) -> ExperimentResult:
        servers = request.node.stash.setdefault(SERVERS_KEY, [])
        return record_experiment(run_and_write(experiment, experiment.settings.results_path,
                                               on_server=servers.append))

    return run


@pytest.fixture
def leak_check(request: pytest.FixtureRequest, leak_settings: Settings,
               run_experiment: Callable[[Experiment], ExperimentResult]) -> Callable[..., ExperimentResult]:
    """``leak_check(target=None, expect="plateau", *, cmd=None, name=None, **options)``

    Runs one experiment on a fresh slow server: ``target`` is a function that
    makes one request to the URL it is given (``async def`` too), a catalog name
    or ``module:function``; or ``cmd="..."`` a shell command using ``{url}``.
    ``options`` are the harness's own (``cycles=20``, ``delay=0.5``,
    ``duration=8``, ``max_churn=0.5``, ...), over the session's settings.
    Returns the result (verdict, figures, samples) and writes it to the results
    directory; fails the test, listing the sockets left, when the verdict is not
    ``expect`` (``None``: never fails on the verdict).
    """
    calls = 0

    def judge(target=None, expect: str | None = "plateau", *, cmd: str | None = None, name: str | None = None,
              **options) -> ExperimentResult:
        nonlocal calls
        calls += 1
        label = file_label(request.node.name)
        try:
            experiment = Experiment(target, cmd=cmd, expect=expect, settings=override(leak_settings, **options),
                                    name=name or (label if calls == 1 else f"{label}-{calls}"))
            result = run_experiment(experiment)  # a target that does not resolve fails before a server starts
        except (OptionError, UsageError, TargetError, ExperimentError, ServerError) as exc:
            pytest.fail(f"leak_check: {exc}", pytrace=False)
        if not result.passed:
            pytest.fail(result.explain(), pytrace=False)
        return result

    return judge
