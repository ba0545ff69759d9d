import contextlib
import gc
import os
import shutil
import signal
import sys
import tempfile
import threading

import psutil
import pytest

from harness.sampling.leftovers import describe, settle
from harness.server import STARTED, stop_forker
from tests import bytecode, scheduling

# harness.faces.pytest_plugin is loaded through its pytest11 entry point (pip install -e .)

# Hypothesis (tests/test_fuzz.py) writes caches under its home folder, .hypothesis in the working folder by default:
# a folder of each session's own instead, made at configure and removed at unconfigure (which run for every
# session, collect-only ones too).
# Python's bytecode cache for the processes the tests start (pytest-xdist's workers, ~150 harness runs): with
# PYTHONDONTWRITEBYTECODE set (as on this machine) each compiled the harness and the test modules again, ~3 s of
# CPU a worker, ~0.1 s a run. It goes in the virtual environment's own folder (pycache/, removed with it; nothing
# in the source tree), or, outside a virtual environment, in a folder of the session's removed at the end.
# A session nested in this process (tests/test_selection.py runs pytest.main) puts back the outer one's.
SCRATCH = pytest.StashKey[tuple]()
SHARED = "harness_scratch"  # pytest-xdist's workerinput key: the folders above, made by the controller for all
ENVIRONMENT = ("HYPOTHESIS_STORAGE_DIRECTORY", "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")


def _bytecode_cache() -> tuple[str, bool]:
    """(the folder, whether it is the session's own to remove)."""
    if sys.prefix != sys.base_prefix:  # a virtual environment: ours to write in
        folder = os.path.join(sys.prefix, "pycache")
        try:
            os.makedirs(folder, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder, False
        except OSError:
            pass
    return tempfile.mkdtemp(prefix="harness-pycache-"), True


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("store_durations", False):
        config.pluginmanager.register(scheduling.DurationRecorder(), "harness-durations")
    before = {name: os.environ.get(name) for name in ENVIRONMENT}
    shared = getattr(config, "workerinput", {}).get(SHARED)
    with _interrupts_held():
        if shared:  # a pytest-xdist worker: its controller's folders, left to it to remove
            (hypothesis_home, pycache), made = shared, []
        else:
            hypothesis_home = tempfile.mkdtemp(prefix="harness-hypothesis-")
            pycache, own = _bytecode_cache()
            made = [hypothesis_home] + ([pycache] if own else [])
        config.stash[SCRATCH] = (before, made)
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = hypothesis_home
    os.environ["PYTHONPYCACHEPREFIX"] = pycache
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if not os.listdir(pycache) and config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        _fill_bytecode_cache(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, before a worker starts: it uses this session's folders (a worker stopped mid-test, as at a
    Ctrl-C, never reaches its unconfigure; folders of its own were left in /tmp)."""
    node.workerinput[SHARED] = (os.environ["HYPOTHESIS_STORAGE_DIRECTORY"], os.environ["PYTHONPYCACHEPREFIX"])


def _fill_bytecode_cache(config: pytest.Config) -> None:
    """An empty cache (a fresh virtual environment, as in CI) is filled by one collection before
    the workers start; else each of them compiled everything they import (the prefix holds the
    standard library's and the packages' too) at once: 3.2 s of CPU each, against 0.6 s warm.
    What was installed compiled already (the standard library, site-packages) is linked in
    first (tests/bytecode.py): the collection then compiles only this project's modules."""
    import subprocess

    bytecode.seed(os.environ["PYTHONPYCACHEPREFIX"], bytecode.installed_roots())
    subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=", "-p", "no:xdist",
                    "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio"], cwd=config.rootpath,
                   # what it prints does not matter; 120 s: a cold collection takes ~3 s, 40x that on a loaded machine
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)


@contextlib.contextmanager
def _interrupts_held():
    """SIGINT and SIGTERM wait while the session's folders are made and recorded, and land
    just after: one that landed in between left a folder made and never recorded, so never
    removed (a soak stopped a run within its first second). Main thread only (signals are
    delivered there); elsewhere, or without pthread_sigmask, nothing is held."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SCRATCH not in config.stash:  # interrupted before its configure made anything
        return
    before, made = config.stash[SCRATCH]
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind():
    """A test run leaves nothing behind: every server started was stopped and reaped,
    and this process holds no socket to any of them (as Go's net/http tests check)."""
    yield
    forked = stop_forker()  # the plugin's forker of servers: its end ends any server it still ran
    assert not forked, f"servers left running: pids {forked}"
    left = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert not left, "processes left running: " + ", ".join(f"{p.pid} {' '.join(p.cmdline())}" for p in left)
    sockets = settle(set(STARTED))
    if sockets:
        pytest.fail(f"{len(sockets)} sockets still open to experiment servers at the end of the session:\n"
                    + describe(sockets), pytrace=False)



@pytest.hookimpl(optionalhook=True)  # xdist's hooks: a session without it (-p no:xdist) still loads this file
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: four workers a core (at least 2). An experiment spends most of its time waiting on its slow
    server (~0.45 s of CPU in ~1.8 s), so a core serves several (measured on 2 cores, the whole suite, three runs
    each, alternating: 8 workers 68-73 s, 4 workers 76-77 s; 6 workers 70-75 s)."""
    return max(2, 4 * (os.cpu_count() or 1))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-durations", action="store_true", default=False,
                     help="measure each module's (and experiment's) time and write tests/durations.json, the order "
                          "pytest-xdist hands them out in (longest first)")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` for tests/ (a module on one worker), each experiment on its own, handed out longest
    first (``tests/scheduling.py``)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    durations = scheduling.load()

    class LongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling.scope_of(nodeid)

        def _assign_work_unit(self, node) -> None:
            if self.collection is not None and not getattr(self, "_ordered", False):
                self._ordered = True  # the whole queue is known by the first assignment
                scheduling.longest_first(self.workqueue, durations)
            super()._assign_work_unit(node)

    return LongestFirst(config, log)


# The collector's first generation runs every 50,000 allocations, not every 700: a worker's collections took
# 1.0-2.6 s of CPU (a whole suite, 9 processes: ~12 s of its ~135), and 4.3 s in all at 50,000 (the same suite,
# measured with gc.callbacks). A worker allocates in bursts (a netlink dump, a results file, a hypothesis example)
# whose objects die young by reference counting, and each collection of 700 walked the survivors again.
GC_THRESHOLDS = (50_000, 20, 20)


def pytest_collection_finish(session: pytest.Session) -> None:
    # everything imported and collected by now (matplotlib, hypothesis, the harness: ~10^6 objects a worker) never
    # becomes garbage: frozen, the collector stops walking it at every full collection
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
