"""What both faces do the same way: run an experiment and keep its files,
even when the run is interrupted or could not finish."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that come inside the block take effect when it ends, through the
    handlers they had (^C: KeyboardInterrupt): a result being written is written whole.
    Outside the main thread, where handlers cannot be set, nothing is deferred."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    before = {sig: signal.signal(sig, lambda signum, frame: came.append(signum))
              for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        if came:
            signal.raise_signal(came[0])  # as it would have come: its handler runs now


def run_and_write(experiment: Experiment, results_dir: Path, *, progress: Progress = lambda line: None,
                  on_server: Callable[[ServerProcess], None] = lambda server: None,
                  on_write_error: Callable[[str], None] = complain) -> ExperimentResult:
    """``run`` the experiment, then write its JSON and CSV in ``results_dir``; on
    an exception, write what was measured (marked incomplete) and re-raise. A signal
    that comes once the run is over is taken after the result is written (a loaded
    soak: ^C while a finished result was being written lost it)."""
    result: ExperimentResult | None = None
    try:
        result = run(experiment, progress=progress, on_server=on_server)
        with interrupts_deferred():
            keep(lambda: write_result(result, results_dir), "the results", on_write_error)
    except BaseException as exc:
        partial = measured_so_far(exc) or result  # an interrupt after the run: its whole result
        if partial is not None:
            with interrupts_deferred():
                keep(lambda: write_result(partial, results_dir), "the results", on_write_error)
        raise
    return result
