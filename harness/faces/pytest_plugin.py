"""The pytest plugin (entry point ``pytest11``): options, markers, header and
fixtures only.

Installing the package registers it in every pytest run. Options live in one
group; each help text is also its ini key's help; a ``LEAK_*`` environment
variable is the fallback. Experiments run through the runner
(``harness.runner``) and are written by the report (``harness.report``).
"""
from __future__ import annotations

import base64
import pickle
import statistics
from collections.abc import Callable, Iterator

import pytest
from _pytest.runner import runtestprotocol  # pytest's own protocol, run unlogged (as pytest-rerunfailures does)

from ..clients import TargetError
from ..driving import ExperimentError, ExperimentResult
from ..options import OPTIONS, Settings, override, settings_from
from ..values import OptionError, UsageError
from ..report import write_session
from ..runner import Experiment, file_label, measured_so_far
from ..sampling import choose_backend, sites
from ..server import Certificates, ServerError, ServerProcess, fault_args, stop_forker, use_forker
from ..judging import GROWTH
from ..socket_leaks import Check, Ignore, describe, run_rounds
from .common import keep, run_and_write

SETTINGS_KEY = pytest.StashKey[Settings]()
RESULTS_KEY = pytest.StashKey[list]()
SERVERS_KEY = pytest.StashKey[list]()
REPORT_KEY = pytest.StashKey[list]()
IGNORE_KEY = pytest.StashKey[Ignore]()
LEAKS_KEY = pytest.StashKey[Check]()
LEAK_COSTS_KEY = pytest.StashKey[list]()
CURRENT_KEY = pytest.StashKey[Check]()  # the check of the test running now


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leak-harness", "TCP connection leak experiments")
    group.addoption("--socket-leaks", action="store_true", default=False,
                    help="check every test for sockets it left held (to any remote); see socket_leaks_ignore")
    parser.addini("socket_leaks_ignore", type="linelist", default=[],
                  help="what the socket-leak check leaves alone, one a line: a host or network (10.0.0.0/8), "
                       ":PORT, HOST:PORT, or module:NAME (sockets opened there)")
    for option in OPTIONS:
        help_text = f"{option.help} (default {option.default_text}; env {option.env})"
        group.addoption(option.flag, dest="leak_" + option.name, default=None, metavar=option.name.upper(),
                        **option.flag_kwargs, help=help_text)
        parser.addini(option.ini, help=help_text, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "experiment: a measured experiment on a client variant (starts its own slow server)")
    config.addinivalue_line("markers", "socket_leaks(rounds=1, ignore=[...]): fail this test if it leaves sockets held "
                                       "(as --socket-leaks does for every test)")
    try:
        config.stash[IGNORE_KEY] = Ignore.parse(config.getini("socket_leaks_ignore"), "socket_leaks_ignore (ini)")
    except OptionError as exc:
        raise pytest.UsageError(f"leak harness: {exc}") from None
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
    use_forker()  # a suite starts a server an experiment: forked, ~10 ms of CPU each instead of ~90


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_forker()


def pytest_report_header(config: pytest.Config) -> str:
    s = config.stash[SETTINGS_KEY]
    return (f"leak harness: delay={s.delay}s cycles={s.cycles} period={s.period}s extra-max={s.extra_max} "
            f"seed={s.seed} rounds={s.rounds or 'auto'}..{s.max_rounds} budget={s.budget} sample-interval={s.sample_interval}s "
            f"idle-timeout={s.idle_timeout}s max-churn={s.max_churn if s.max_churn is not None else 'off'} "
            f"sampler={s.sampler}{'' if s.sampler != 'auto' else ' (' + choose_backend('auto').name + ')'} "
            f"results-dir={s.results_dir} plots={'on' if s.plots else 'off'}")


def _leak_check_for(item: pytest.Item) -> Check | None:
    marker = item.get_closest_marker("socket_leaks")
    if marker is None and not item.config.getoption("socket_leaks"):
        return None
    ignore = item.config.stash[IGNORE_KEY]
    if marker is not None and marker.kwargs.get("ignore"):
        ignore = ignore + Ignore.parse(marker.kwargs["ignore"], f"@pytest.mark.socket_leaks(ignore=...) on {item.name}")
    return Check(ignore)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A checked test runs pytest's own protocol unlogged, so a leak found after its
    teardown can fail its call (also when it failed for another reason), then logs
    its reports. The baseline is taken before its fixtures are set up: what a
    function-scoped fixture opens must be gone after teardown too; what a wider
    fixture set up on the way opens is that fixture's (``pytest_fixture_setup``)."""
    check = _leak_check_for(item)
    if check is None:
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    with sites.recording():  # where each socket is opened, from the test's setup to its teardown
        item.stash[LEAKS_KEY] = check.start()
        item.config.stash[CURRENT_KEY] = check
        try:
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            leaks = check.leaks() if any(r.when == "call" for r in reports) and not check.reported else []
        finally:
            del item.stash[LEAKS_KEY]
            del item.config.stash[CURRENT_KEY]
    item.config.stash.setdefault(LEAK_COSTS_KEY, []).append(check.seconds)
    for report in reports:
        if report.when == "call" and leaks:
            _fail_for_leaks(report, describe(leaks))
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _fail_for_leaks(report: pytest.TestReport, text: str) -> None:
    """The call fails with the leak; a call that failed already keeps its error and gets the leak beside it."""
    if report.passed:
        report.outcome, report.longrepr = "failed", text
    elif hasattr(report.longrepr, "addsection"):  # in the failure's own text: terminal, junit-xml, xdist alike
        report.longrepr.addsection("socket leak", text)
    else:
        report.longrepr = f"{report.longrepr}\n\n{text}"


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    """A module's or a session's fixture set up during a checked test: its sockets are its own."""
    check = request.config.stash.get(CURRENT_KEY, None) if fixturedef.scope != "function" else None
    if check is None:
        return (yield)
    earlier = check.held_keys()
    try:
        return (yield)
    finally:
        check.keep_opened_since(earlier)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """``socket_leaks(rounds=N)``: the test body N times; growth from run to run fails it."""
    marker = pyfuncitem.get_closest_marker("socket_leaks")
    rounds = marker.kwargs.get("rounds", 1) if marker is not None else 1
    check = pyfuncitem.stash.get(LEAKS_KEY, None)
    if check is None or rounds == 1:
        return (yield)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 2 <= rounds <= 100:
        raise pytest.UsageError(f"@pytest.mark.socket_leaks(rounds={rounds!r}) on {pyfuncitem.name}: give 2 to 100")
    first = yield  # pytest's own call is the first run
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    verdict, reason, grown = run_rounds(lambda: pyfuncitem.obj(**args), check, rounds, first_done=True)
    if verdict == GROWTH:
        check.reported = True
        pytest.fail(f"socket leak from run to run: {reason}\n" + describe(grown), pytrace=False)
    check.keep(check.held_now())  # a plateau: what it holds is the pool's own, not a leak
    return first


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        for server in item.stash.get(SERVERS_KEY, []):
            report.sections.append((f"slow server pid {server.pid} stderr", server.stderr_text() or "(empty)"))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker_output = getattr(session.config, "workeroutput", None)  # a pytest-xdist worker: its controller sums up
    results = session.config.stash.get(RESULTS_KEY, [])
    if worker_output is not None:  # each experiment's files are written already; the session's, once, by the controller
        worker_output["socket_leak_costs"] = session.config.stash.get(LEAK_COSTS_KEY, [])
        worker_output["leak_results"] = base64.b64encode(pickle.dumps(results)).decode("ascii")
        return
    if results:
        results.sort(key=lambda result: result.started_at)  # workers' results arrive as each worker ends
        written: list = []
        settings = session.config.stash[SETTINGS_KEY]

        def write() -> None:
            files = write_session(results, settings.results_path, "experiments.png", "experiments of this run",
                                  settings.plots)
            written.extend([f"table {files.table}", files.picture, f"report {files.report}"])

        keep(write, "the summary", written.append)
        session.config.stash[REPORT_KEY] = written


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist's controller: a worker's results and check costs join the session's,
    so one summary and one picture cover every worker (a worker that crashed sends
    none: its experiments' own files are on disk)."""
    output = getattr(node, "workeroutput", {})
    costs = output.get("socket_leak_costs")
    if costs:
        node.config.stash.setdefault(LEAK_COSTS_KEY, []).extend(costs)
    packed = output.get("leak_results")
    if packed:  # pickled by a worker of this same session and code
        node.config.stash.setdefault(RESULTS_KEY, []).extend(pickle.loads(base64.b64decode(packed)))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    written = config.stash.get(REPORT_KEY, None)
    if written:
        terminalreporter.write_line("leak harness: " + "; ".join(written))
    costs = config.stash.get(LEAK_COSTS_KEY, None)
    if costs:
        terminalreporter.write_line(f"socket-leak check: {len(costs)} tests, {1000 * statistics.median(costs):.1f} ms "
                                    f"a test (median; {1000 * max(costs):.1f} ms at most, a leak's settling included)")


@pytest.fixture(scope="session")
def leak_settings(pytestconfig: pytest.Config) -> Settings:
    """The experiment options in force (command line > ini > LEAK_* env > default)."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture
def start_slow_server(request: pytest.FixtureRequest, leak_settings: Settings) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``start_slow_server(delay=None, host="127.0.0.1", header_timeout=None, loop=None, tls=None,
    parser="auto", workers=1, **faults)`` starts a fresh server (``header_timeout``: seconds, ``--header-timeout``;
    ``loop``: its event loop, ``--server-loop`` by default; ``parser``: what reads requests, the server's
    ``--parser``; ``tls``: HTTPS with a CA made by trustme, ``--tls`` by default: ``server.url`` is https://,
    ``server.tls.ca`` the file a client must trust; ``workers``: processes on its port, ``--workers``).

    ``faults``: ``fault`` (a name in ``harness.server.FAULTS``) and the knobs of
    ``harness.server.KNOBS`` (``every``, ``idle_close``, ``stop_accepting_after``).
    Every server started is stopped at teardown (terminate -> wait -> kill);
    its stderr is attached to the report of a failing test.
    """
    started: list[ServerProcess] = request.node.stash.setdefault(SERVERS_KEY, [])
    made: list[Certificates] = []  # removed once their servers stopped

    def start(delay: float | None = None, host: str = "127.0.0.1", header_timeout: float | None = None,
              loop: str | None = None, tls: bool | None = None, parser: str = "auto", workers: int = 1,
              **faults) -> ServerProcess:
        extra = fault_args(**faults) + (("--header-timeout", str(header_timeout)) if header_timeout else ()) \
            + (("--workers", str(workers)) if workers != 1 else ())
        certificates = Certificates.make((host,)) if (leak_settings.tls if tls is None else tls) else None
        if certificates is not None:
            made.append(certificates)
        server = ServerProcess(delay=leak_settings.delay if delay is None else delay, host=host, extra_args=extra,
                               loop=loop or leak_settings.server_loop, tls=certificates, parser=parser)
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
        for certificates in made:
            certificates.remove()
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
        try:
            result = run_and_write(experiment, experiment.settings.results_path, on_server=servers.append)
        except BaseException as exc:  # what it measured before it ended (incomplete) is in the summary too
            partial = measured_so_far(exc)
            if partial is not None:
                record_experiment(partial)
            raise
        return record_experiment(result)

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
