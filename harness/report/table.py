"""The seed's comparison table, regenerated from measured numbers."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..driving import Churn, CloseOnErrorFigures, ExperimentResult, IdleFigures, PersistentFigures
from ..judging import GROWTH
from ..scenarios import SEED_PAIR, SEED_ROWS, TCP_COUNT
from .files import atomic_write, write_json

ROWS = tuple((row.scenario, row.title) for row in SEED_ROWS)


def _cell(result: ExperimentResult) -> str:
    f = result.figures
    if not result.complete:
        return f"incomplete ({result.error})"
    mark = "" if result.passed else " [FAILED]"
    if isinstance(f, PersistentFigures):
        n = f.new_connections
        return f"{'yes' if f.persistent else 'no'}: {n} connection{'' if n == 1 else 's'} for {f.requests} requests{mark}"
    if isinstance(f, IdleFigures):
        if f.closed_after_s is not None:
            return f"closed: {f.idle_before} idle sockets closed {f.closed_after_s:.2f} s after going idle{mark}"
        return f"never: {f.idle_after} of {f.idle_before} idle sockets open after {f.window_s:.2f} s{mark}"
    if isinstance(f, CloseOnErrorFigures):
        word = "yes" if f.after_error == 0 and f.idle_before else "no"
        return f"{word}: {f.idle_before - f.after_error} of {f.idle_before} idle sockets closed after a {f.failure}{mark}"
    if result.scenario == TCP_COUNT and result.verdict and result.verdict.trend:
        trend = result.verdict.trend
        verdict = result.verdict.word
        word = "keeps increasing" if verdict == GROWTH else "stays stable"
        path = " -> ".join(map(str, trend.residuals))
        sweeps = result.verdict.sweeps
        proof = (f"; {len(sweeps.abandoned)} abandoned" if sweeps.abandoned else f"; none abandoned in {sweeps.requests} "
                 "requests") if sweeps is not None else ""
        return f"{word}: {verdict}, kept {path} after rounds of {trend.requests_per_round} requests{proof}{mark}"
    return result.verdict.summary if result.verdict else "-"


def _churn_cell(result: ExperimentResult) -> str:
    f = result.figures
    if not isinstance(f, Churn):
        return "-"
    return f"{f.new_connections_per_request:.2f} new connections, {f.time_wait_per_request:.2f} TIME_WAIT"


SEED_TABLE_SCENARIOS = {scenario for scenario, _ in ROWS}


def _seed_column(result: ExperimentResult) -> str | None:
    """The seed table's column for a result of one of its scenarios on one server; None for the others."""
    if result.scenario not in SEED_TABLE_SCENARIOS or result.hosts or "-" not in result.name:
        return None
    prefix, column = result.name.split("-", 1)
    return column if prefix.startswith(result.scenario) and column in SEED_PAIR else None


def comparison(results: Sequence[ExperimentResult]) -> dict:
    """The seed's table, for the seed's pair: {'columns': [...], 'rows': [{'row': ..., 'cells': {column: text}}]}."""
    by_key = {}
    columns: list[str] = []
    for result in results:
        column = _seed_column(result)
        if column is None:
            continue
        if column not in columns:
            columns.append(column)
        by_key.setdefault((result.scenario, column), result)
    rows = []
    for scenario, title in ROWS:
        cells = {c: _cell(by_key[(scenario, c)]) for c in columns if (scenario, c) in by_key}
        if cells:
            rows.append({"row": title, "cells": cells})
    churn = {c: _churn_cell(by_key[(TCP_COUNT, c)]) for c in columns if (TCP_COUNT, c) in by_key}
    if churn:
        rows.append({"row": "Churn per request (not a leak)", "cells": churn})
    return {"columns": columns, "rows": rows}


def others(results: Sequence[ExperimentResult]) -> list[dict]:
    """One row for every result outside the seed's table (catalog, hosts, commands, users' checks)."""
    rows = []
    for r in results:
        if _seed_column(r) is not None:
            continue
        trend = r.verdict.trend if r.verdict else None
        f = r.figures
        rows.append({
            "experiment": r.name,
            "verdict": r.verdict.word if trend else ("checks" if r.complete else "incomplete"),
            "passed": r.passed,
            "kept": " -> ".join(map(str, trend.residuals)) if trend else "-",
            "churn": f"{f.new_connections_per_request:.2f} new connections per request" if isinstance(f, Churn) else "-",
            "seconds": round(r.duration_s, 2),
        })
    return rows


def markdown(table: dict) -> str:
    columns = table["columns"]
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row in table["rows"]:
        lines.append(f"| {row['row']} | " + " | ".join(row["cells"].get(c, "-") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def plain(table: dict) -> str:
    """The table for a terminal: one block per row, one line per column."""
    width = max((len(c) for c in table["columns"]), default=0)
    out = []
    for row in table["rows"]:
        out.append(row["row"])
        for column in table["columns"]:
            if column in row["cells"]:
                out.append(f"  {column:<{width}}  {row['cells'][column]}")
    return "\n".join(out) + "\n"


def write_summary(results: Sequence[ExperimentResult], results_dir: Path, extra: dict | None = None) -> tuple[Path, Path]:
    """Write summary.md and summary.json (the table and every experiment's outcome)."""
    table = comparison(results)
    experiments = [
        {"name": r.name, "scenario": r.scenario, "target": r.target, "passed": r.passed, "complete": r.complete,
         "summary": r.verdict.summary if r.verdict else r.error, "duration_s": round(r.duration_s, 3)}
        for r in results
    ]
    md = "# Measured comparison\n\n" + (markdown(table) if table["columns"] else "(the seed's pair did not run)\n")
    extra_rows = others(results)
    if extra_rows:
        md += ("\n## Other experiments\n\n| experiment | verdict | kept (rounds or windows) | churn | passed |\n"
               "|---|---|---|---|---|\n")
        md += "".join(f"| {o['experiment']} | {o['verdict']} | {o['kept']} | {o['churn']} | "
                      f"{'yes' if o['passed'] else 'NO'} |\n" for o in extra_rows)
    md += "\n## Experiments\n\n| experiment | passed | seconds | summary |\n|---|---|---|---|\n"
    md += "".join(f"| {e['name']} | {'yes' if e['passed'] else 'NO'} | {e['duration_s']:.2f} | {e['summary']} |\n"
                  for e in experiments)
    md_path = atomic_write(Path(results_dir) / "summary.md", md)
    json_path = write_json(Path(results_dir) / "summary.json", {"table": table, "others": extra_rows, "experiments": experiments, **(extra or {})})
    return md_path, json_path
