import psutil
import pytest

# harness.pytest_plugin is loaded through its pytest11 entry point (pip install -e .)

@pytest.fixture(scope="session", autouse=True)
def _nothing_left_running():
    """A test run leaves no process behind: every server started was stopped and reaped."""
    yield
    left = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert not left, "processes left running: " + ", ".join(f"{p.pid} {' '.join(p.cmdline())}" for p in left)
