"""What both faces do the same way: run an experiment and keep its files,
even when the run is interrupted or could not finish."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ..driving import ExperimentResult, Progress
from ..report import write_result
from ..runner import Experiment, measured_so_far, run
from ..server import ServerProcess


def complain(line: str) -> None:
    """One line on stderr: the default for a write that failed after measuring."""
    print(f"harness: {line}", file=sys.stderr, flush=True)


def keep(write: Callable[[], object], what: str, on_write_error: Callable[[str], None]) -> bool:
    """Run ``write``; an OSError becomes one line to ``on_write_error`` (a file
    that could not be written never loses a verdict). True when written."""
    try:
        write()
    except OSError as exc:
        on_write_error(f"could not write {what}: {exc.strerror or exc}"
                       + (f": {exc.filename}" if getattr(exc, "filename", None) else ""))
        return False
    return True


def run_and_write(experiment: Experiment, results_dir: Path, *, progress: Progress = lambda line: None,
                  on_server: Callable[[ServerProcess], None] = lambda server: None,
                  on_write_error: Callable[[str], None] = complain) -> ExperimentResult:
    """``run`` the experiment, then write its JSON and CSV in ``results_dir``; on
    an exception, write what was measured (marked incomplete) and re-raise."""
    try:
        result = run(experiment, progress=progress, on_server=on_server)
    except BaseException as exc:
        partial = measured_so_far(exc)
        if partial is not None:
            keep(lambda: write_result(partial, results_dir), "the results", on_write_error)
        raise
    keep(lambda: write_result(result, results_dir), "the results", on_write_error)
    return result
