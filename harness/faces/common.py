"""What both faces do the same way: run an experiment and keep its files,
even when the run is interrupted or could not finish."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..driving import ExperimentResult, Progress
from ..report import write_result
from ..runner import Experiment, measured_so_far, run
from ..server import ServerProcess


def run_and_write(experiment: Experiment, results_dir: Path, *, progress: Progress = lambda line: None,
                  on_server: Callable[[ServerProcess], None] = lambda server: None) -> ExperimentResult:
    """``run`` the experiment, then write its JSON and CSV in ``results_dir``; on
    an exception, write what was measured (marked incomplete) and re-raise."""
    try:
        result = run(experiment, progress=progress, on_server=on_server)
    except BaseException as exc:
        partial = measured_so_far(exc)
        if partial is not None:
            write_result(partial, results_dir)
        raise
    write_result(result, results_dir)
    return result
