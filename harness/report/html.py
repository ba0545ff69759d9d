"""``report.html``: one self-contained page a person opens after a run (no network, no
file beside it needed): the measured table first, then each experiment's picture with
its verdict and the figures that decided it, failures first, each linked from the table.

Cost: ~1 ms an experiment (its SVG, ``svg.py``) plus the text; a session of 40 experiments
is a page of ~1 MB at most.
"""
from __future__ import annotations

import base64
import re
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path

from ..driving import ExperimentResult
from .files import atomic_write
from .svg import experiment_svg
from .table import comparison
from .text import figures_lines, outcome_lines, verdict_line

REPORT_NAME = "report.html"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 70em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.passed { color: #1e8449; } .failed { color: #c0392b; font-weight: bold; }
section { border-top: 1px solid #ddd; padding-top: 0.5em; margin-top: 1.5em; }
section.failed-experiment h2 { color: #c0392b; }
pre { background: #f8f8f8; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def anchors(results: Sequence[ExperimentResult]) -> list[str]:
    """One id a result, made of its name (letters, digits, ``_``, ``-``), unique within the page."""
    seen: dict[str, int] = {}
    ids = []
    for result in results:
        base = "experiment-" + re.sub(r"[^A-Za-z0-9_-]", "-", result.name)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def _outcome(result: ExperimentResult) -> str:
    return "passed" if result.passed else ("FAILED" if result.complete else "FAILED (incomplete)")


def _why(result: ExperimentResult) -> str:
    verdict = result.verdict
    return verdict.summary if verdict is not None else (result.error or "")


def _section(result: ExperimentResult, anchor: str) -> str:
    max_churn = result.settings.get("max_churn") if isinstance(result.settings, dict) else None
    text = [verdict_line(result), *figures_lines(result, max_churn), *outcome_lines(result, "at the end")]
    if result.error and result.verdict is not None:
        text.append(f"error: {result.error}")
    svg = experiment_svg(result.samples, result.name)
    picture = (f'<img alt="{escape(result.name)}: held sockets, TIME_WAIT and requests in flight over time" '
               f'src="data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode("ascii")}">'
               if svg else "<p>no picture: nothing was sampled</p>")
    state = "passed" if result.passed else "failed"
    return (f'<section id="{anchor}" class="{state}-experiment">\n'
            f'<h2>{escape(result.name)}: <span class="{state}">{escape(_outcome(result))}</span></h2>\n'
            f'<p>target {escape(result.target)}, scenario {escape(result.scenario)}, '
            f'{result.duration_s:.2f} s; files <a href="{escape(result.name)}.json">{escape(result.name)}.json</a>, '
            f'<a href="{escape(result.name)}.csv">{escape(result.name)}.csv</a>; <a href="#results">the table</a></p>\n'
            f'{picture}\n<pre>{escape(chr(10).join(text))}</pre>\n</section>')


def _seed_table(results: Sequence[ExperimentResult]) -> str:
    table = comparison(results)
    if not table["rows"]:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in table["columns"])
    rows = "".join(f"<tr><th>{escape(row['row'])}</th>"
                   + "".join(f"<td>{escape(row['cells'].get(c, '-'))}</td>" for c in table["columns"]) + "</tr>\n"
                   for row in table["rows"])
    return f"<h2>The seed's comparison, measured</h2>\n<table><tr><th></th>{head}</tr>\n{rows}</table>\n"


def report_html(results: Sequence[ExperimentResult], title: str) -> str:
    """The page's text: failures first, in the order they ran within each group."""
    ordered = sorted(results, key=lambda r: r.passed)  # stable: failures first, each group in its order
    ids = anchors(ordered)
    failed = sum(not r.passed for r in ordered)
    rows = "".join(
        f'<tr><td><a href="#{anchor}">{escape(r.name)}</a></td>'
        f'<td class="{"passed" if r.passed else "failed"}">{escape(_outcome(r))}</td>'
        f"<td>{escape(r.verdict.word or 'checks') if r.verdict else '-'}</td><td>{escape(_why(r))}</td>"
        f"<td>{r.duration_s:.2f}</td></tr>\n" for r, anchor in zip(ordered, ids))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(min((r.started_at for r in results), default=time.time())))
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>{escape(title)}</h1>\n<p>{len(ordered)} experiments, "
            f'<span class="{"failed" if failed else "passed"}">{failed} failed</span>; started {when}</p>\n'
            f'<table id="results"><tr><th>experiment</th><th>outcome</th><th>verdict</th><th>why</th>'
            f"<th>seconds</th></tr>\n{rows}</table>\n{_seed_table(ordered)}"
            + "\n".join(_section(r, anchor) for r, anchor in zip(ordered, ids)) + "\n</body></html>\n")


def write_report(results: Sequence[ExperimentResult], results_dir: Path, title: str) -> Path:
    """Write ``results_dir/report.html`` (atomically); returns its path."""
    return atomic_write(Path(results_dir) / REPORT_NAME, report_html(results, title))
