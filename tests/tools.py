"""External programs the tests use: required in CI, skipped with a reason elsewhere."""
import os
import shutil
import sys

import pytest

REQUIRED = os.environ.get("HARNESS_REQUIRE_TOOLS") == "1"  # set by .ci/run, which installs the tools
# pytest in a user's project made by a test: no cache folder, and not hypothesis's plugin (installed here for the
# fuzzers, unknown to those projects; importing it costs each pytest process ~0.7 s of CPU), nor anyio's (0.2 s)
USER_PYTEST = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio")


def default_requests_per_round() -> int:
    """Requests one round of the default schedule sends, read from the defaults themselves."""
    from harness import Settings
    from harness.driving import make_schedule
    s = Settings()
    return make_schedule(s.cycles, s.period, s.extra_max, s.seed).requests


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
    picture costs each about as much CPU as its measuring (tests/test_plots.py draws them).
    In a pytest run each is forked from the plugin's forker, which imported the harness once
    (~0.2 s of CPU a run saved); elsewhere it is its own interpreter."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> tuple:
        args, cwd = runs[name]
        path = base / f"{name}.json"
        code, out, err = harness_run([*args, "--json", str(path), *([] if plots else ["--plots", "off"])], cwd,
                                     deadline_s)
        return code, out, err, json.loads(path.read_text()) if path.exists() else None

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        return dict(zip(runs, pool.map(one, runs)))


def harness_run(args: list[str], cwd, deadline_s: float) -> tuple[int, str, str]:
    """``python -m harness ARGS`` in ``cwd`` with this process's environment: (exit status, stdout,
    stderr). Forked from this process's forker where it has one (``use_forker``), else a new
    interpreter; killed past ``deadline_s`` (TimeoutExpired), as ``subprocess.run`` does."""
    import subprocess

    from harness.server.forker import forker

    spawner = forker()
    if spawner is None:
        done = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, text=True, capture_output=True,
                              timeout=deadline_s)
        return done.returncode, done.stdout, done.stderr
    child = spawner.spawn([str(a) for a in args], program="harness", cwd=str(cwd), env=dict(os.environ))
    try:
        out, err = child.communicate(deadline_s)
    except BaseException:
        child.kill()
        child.wait(deadline_s)
        raise
    return child.returncode, out.decode(errors="replace"), err.decode(errors="replace")
