"""Longest first: pytest-xdist hands out the suite's scopes (a module of tests/,
each experiment apart) longest first, by their time in ``tests/durations.json``,
so that a module whose fixture runs a batch for 30 s never starts last (the suite
ends when its last worker does). ``pytest --store-durations`` measures the times
again and writes that file; a scope missing from it gets ``UNKNOWN_TEST_S`` a test.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

DURATIONS = Path(__file__).with_name("durations.json")
UNKNOWN_TEST_S = 1.0  # between a median test of tests/ (~0.5 s) and an experiment (~2 s)


def scope_of(nodeid: str) -> str:
    """What one worker runs as a whole: each experiment apart (no module state:
    whichever worker is free), a module of tests/ (several run a batch once in a
    module fixture, so a module stays on one worker)."""
    return nodeid if nodeid.startswith("experiments/") else nodeid.split("::", 1)[0]


def load(path: Path = DURATIONS) -> dict[str, float]:
    """{scope: seconds} from ``path``; empty where it is missing or unreadable (the order is
    only a speed-up: a bad file costs time, never a result)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def longest_first(workqueue: OrderedDict[str, dict[str, bool]], durations: Mapping[str, float]) -> None:
    """Reorder ``workqueue`` (scope -> {nodeid: done}) in place, longest expected time first."""
    def expected(item: tuple[str, dict[str, bool]]) -> float:
        scope, tests = item
        return durations.get(scope, UNKNOWN_TEST_S * len(tests))

    ordered = sorted(workqueue.items(), key=expected, reverse=True)
    workqueue.clear()
    workqueue.update(ordered)


class DurationRecorder:
    """Sums each scope's setup, call and teardown times (s) as reports arrive, and
    writes them to ``path`` at the session's end (atomically: a temporary file
    renamed over it)."""

    def __init__(self, path: Path = DURATIONS) -> None:
        self.path = path
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report) -> None:
        scope = scope_of(report.nodeid)
        self.seconds[scope] = self.seconds.get(scope, 0.0) + report.duration

    def pytest_sessionfinish(self, session) -> None:
        if getattr(session.config, "workerinput", None) is not None or not self.seconds:
            return  # a worker's own session: the controller writes
        text = json.dumps({k: round(v, 2) for k, v in sorted(self.seconds.items())}, indent=1) + "\n"
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".durations-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise
