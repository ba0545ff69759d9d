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
    at most ``at_once`` processes at a time, the next starting as soon as one ends; returns
    {name: (exit status, stdout, stderr, the JSON or None)}. A process past ``deadline_s``
    is killed (``subprocess.run``) and fails its run; none is left running.
    Without ``plots`` no PNG is drawn (``--plots off``): these runs test verdicts, and a
    picture costs each about as much CPU as its measuring (tests/test_plots.py draws them)."""
    import json
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> tuple:
        args, cwd = runs[name]
        path = base / f"{name}.json"
        done = subprocess.run([sys.executable, "-m", "harness", *args, "--json", str(path),
                               *([] if plots else ["--plots", "off"])],
                              cwd=cwd, text=True, capture_output=True, timeout=deadline_s)
        return done.returncode, done.stdout, done.stderr, json.loads(path.read_text()) if path.exists() else None

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        return dict(zip(runs, pool.map(one, runs)))
