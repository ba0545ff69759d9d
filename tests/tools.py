"""External programs the tests use: required in CI, skipped with a reason elsewhere."""
import os
import shutil
import sys

import pytest

REQUIRED = os.environ.get("HARNESS_REQUIRE_TOOLS") == "1"  # set by .ci/run, which installs the tools
# pytest in a user's project made by a test: no cache folder, and not hypothesis's plugin (installed here for the
# fuzzers, unknown to those projects; importing it costs each pytest process ~0.7 s of CPU)
USER_PYTEST = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {package})"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_harness(runs: dict[str, tuple[list[str], object]], base, at_once: int, deadline_s: float,
                plots: bool = False) -> dict:
    """Run ``python -m harness ARGS --json BASE/NAME.json`` for each ``name: (args, cwd)``,
    ``at_once`` processes at a time; returns {name: (exit status, stdout, stderr, the
    JSON or None)}. A process past ``deadline_s`` fails its batch; none is left running.
    Without ``plots`` no PNG is drawn (``--plots off``): these runs test verdicts, and a
    picture costs each about as much CPU as its measuring (tests/test_plots.py draws them)."""
    import json
    import subprocess
    import sys

    outcomes: dict = {}
    names = list(runs)
    for first in range(0, len(names), at_once):
        procs = {}
        try:
            for name in names[first:first + at_once]:
                args, cwd = runs[name]
                procs[name] = subprocess.Popen([sys.executable, "-m", "harness", *args, "--json",
                                                str(base / f"{name}.json"), *([] if plots else ["--plots", "off"])],
                                               cwd=cwd, text=True,
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name, proc in procs.items():
                out, err = proc.communicate(timeout=deadline_s)
                path = base / f"{name}.json"
                outcomes[name] = (proc.returncode, out, err, json.loads(path.read_text()) if path.exists() else None)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return outcomes
