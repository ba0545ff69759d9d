import os
import shutil
import tempfile

import psutil
import pytest

from harness.sampling.leftovers import describe, settle
from harness.server import STARTED

# harness.faces.pytest_plugin is loaded through its pytest11 entry point (pip install -e .)

# Hypothesis (tests/test_fuzz.py) writes caches under its home folder, .hypothesis in the working folder by
# default: a folder of each session's own instead, made at configure and removed at unconfigure (which run
# for every session, collect-only ones too).
# A session nested in this process (tests/test_selection.py runs pytest.main) puts back the outer one's.
HYPOTHESIS_HOME = pytest.StashKey[tuple]()
STORAGE = "HYPOTHESIS_STORAGE_DIRECTORY"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[HYPOTHESIS_HOME] = (tempfile.mkdtemp(prefix="harness-hypothesis-"), os.environ.get(STORAGE))
    os.environ[STORAGE] = config.stash[HYPOTHESIS_HOME][0]


def pytest_unconfigure(config: pytest.Config) -> None:
    home, before = config.stash[HYPOTHESIS_HOME]
    shutil.rmtree(home, ignore_errors=True)
    if before is None:
        os.environ.pop(STORAGE, None)
    else:
        os.environ[STORAGE] = before


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind():
    """A test run leaves nothing behind: every server started was stopped and reaped,
    and this process holds no socket to any of them (as Go's net/http tests check)."""
    yield
    left = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert not left, "processes left running: " + ", ".join(f"{p.pid} {' '.join(p.cmdline())}" for p in left)
    sockets = settle({port for _, port in STARTED})
    if sockets:
        pytest.fail(f"{len(sockets)} sockets still open to experiment servers at the end of the session:\n"
                    + describe(sockets), pytrace=False)
