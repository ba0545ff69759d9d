"""The report: results written as files a script can read (JSON, CSV, the
summary table) and a person can look at (report.html, PNG, terminal lines). Every file is
written atomically.

Never imports the runner, a scenario or a face: it is handed results.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ..driving import ExperimentResult
from .html import REPORT_NAME, write_report
from .files import atomic_write, samples_csv, write_json, write_result
from .plots import HOW_TO_GET_PLOTS, plots_available, write_plot
from .table import comparison, markdown, plain, write_summary


def draw(results: Sequence[ExperimentResult], path: Path, title: str) -> str:
    """Write the picture of ``results``; return one line saying where, or why not.
    A picture is extra: it never raises and never loses a verdict."""
    try:
        written = write_plot(results, path, title)
    except (OSError, ValueError, RuntimeError) as exc:
        return f"no plot: {type(exc).__name__}: {exc}"
    if written is not None:
        return f"plot: {written}"
    return f"no plot: {HOW_TO_GET_PLOTS}" if not plots_available() else "no plot: nothing was sampled"


PLOTS_OFF = "no plot: plots are off (--plots off)"


class SessionFiles(NamedTuple):
    table: Path  # summary.md (summary.json beside it)
    picture: str  # the PNG's line: where, or why not (``draw``)
    report: Path  # report.html


def write_session(results: Sequence[ExperimentResult], results_dir: Path, picture: str, title: str,
                  plots: bool = True) -> SessionFiles:
    """The summary of several results (summary.md, summary.json), the page a person opens
    (report.html) and, with ``plots``, their PNG."""
    md, _ = write_summary(results, results_dir)
    page = write_report(results, results_dir, title)
    return SessionFiles(md, draw(results, Path(results_dir) / picture, title) if plots else PLOTS_OFF, page)


__all__ = ["HOW_TO_GET_PLOTS", "PLOTS_OFF", "REPORT_NAME", "SessionFiles", "atomic_write", "comparison", "draw", "markdown", "plain", "plots_available",
           "samples_csv", "write_json", "write_report", "write_result", "write_session",
           "write_summary"]
