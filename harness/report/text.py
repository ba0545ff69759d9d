"""What a person reads in a terminal about a result: the one place that puts
figures into words for the CLI and the pytest plugin alike."""
from __future__ import annotations

from pathlib import Path

from ..driving import CommandFigures, ExperimentResult, RoundsFigures, WatchFigures
from ..sampling import format_sockets


def verdict_line(result: ExperimentResult) -> str:
    """The verdict word, the trend's reason and, beside it, what the sweeps found."""
    verdict = result.verdict
    if verdict is None or verdict.trend is None:
        return f"verdict: {verdict.summary if verdict else result.error}"
    trend, sweeps = verdict.trend, verdict.sweeps
    if sweeps is not None and sweeps.verdict != trend.verdict and verdict.word == sweeps.verdict:
        return f"verdict: {verdict.word}  ({sweeps.reason})\n  by rounds: {trend.verdict} ({trend.reason})"
    line = f"verdict: {verdict.word}  ({trend.reason})"
    if sweeps is not None:
        line += f"\n  exact check: {sweeps.reason}"
    elif isinstance(result.figures, RoundsFigures) and result.figures.exact_check:
        line += f"\n  exact check {result.figures.exact_check}"
    return line


def figures_lines(result: ExperimentResult, max_churn: float | None) -> list[str]:
    """Requests, what was kept, and churn, for a result by rounds or by a command's series."""
    f = result.figures
    lines = []
    if isinstance(f, RoundsFigures):
        lines.append(f"  requests {f.requests} ({f.failed} failed), peak in flight {f.peak_in_flight}, "
                     f"kept after each round {' -> '.join(map(str, f.residuals))}")
        lines.append(f"  churn: {f.new_connections_per_request:.2f} new connections and "
                     f"{f.time_wait_per_request:.2f} TIME_WAIT per request "
                     + (f"(gated at {max_churn} by --max-churn)" if max_churn is not None
                        else "(churn, not a leak; --max-churn gates it)"))
        if f.failed:
            lines.append(f"  warning: {f.failed} of {f.requests} requests failed; the first: {f.first_error}")
        if f.sweep_failed:
            kinds = ", ".join(f"{name} {n}" for name, n in sorted(f.sweep_errors.items()))
            lines.append(f"  warning: {f.sweep_failed} of the sweeps' {f.sweep_requests} requests failed ({kinds}): "
                         "a failed request proves nothing of its socket, so the exact check tested fewer")
    elif isinstance(f, WatchFigures):
        lines.append(f"  pid {f.pid} watched {f.ran_s:.1f} s, {f.samples} samples; by remote endpoint:")
        lines += [f"    {endpoint:<24} {e['verdict']:<9} most held {e['peak_held']}: {e['reason']}"
                  for endpoint, e in f.endpoints.items()]
    elif isinstance(f, CommandFigures):
        ended = "stopped by the harness" if f.stopped_by_harness else "ended by itself"
        lines.append(f"  command {ended} after {f.ran_s:.1f} s, exit status {f.exit_status}; "
                     f"{f.requests} requests ({f.requests_per_s:.1f}/s), at most {f.peak_held} sockets held")
        lines.append(f"  churn: {f.new_connections_per_request:.2f} new connections per request, "
                     f"{f.time_wait_per_s:.1f} TIME_WAIT per second")
        if f.idle_ages:
            oldest = ", ".join(f"port {s['local_port']} {s['idle_ms'] / 1000:.1f} s" for s in f.idle_ages[:5])
            lines.append(f"  held at the end, by idle time (evidence, not a verdict): {len(f.idle_ages)} held; "
                         f"oldest {oldest}" + (" ..." if len(f.idle_ages) > 5 else ""))
        if f.exit_status not in (0, None) and not f.stopped_by_harness and f.stderr_tail:
            lines.append("  the command failed; its stderr ends:")
            lines += ["    " + line for line in f.stderr_tail.splitlines()]
    return lines


def outcome_lines(result: ExperimentResult, when: str) -> list[str]:
    """Every check, then on failure the summary and the sockets still held ``when``."""
    verdict = result.verdict
    lines = [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in result.checks]
    if verdict is not None and not verdict.passed:
        lines.append(f"FAILED: {verdict.summary}")
        if result.sockets_left:
            lines.append(f"sockets to the server {when}:")
            lines.append(format_sockets(result.sockets_left, result.sites))
    return lines


def short_outcome(result: ExperimentResult) -> str:
    """'passed in 2.31 s', or 'FAILED in ...: why'."""
    return (f"{'passed' if result.passed else 'FAILED'} in {result.duration_s:.2f} s"
            + ("" if result.passed else f": {result.verdict.summary if result.verdict else result.error}"))


def result_path_line(result: ExperimentResult, results_dir: Path) -> str:
    return f"results: {Path(results_dir) / result.name}.json"
