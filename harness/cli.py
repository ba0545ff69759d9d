"""``python -m harness``: the command line.

* ``compare``: faulty and fixed side by side on the seed's scenario; prints the
  measured comparison table and writes the results.
* ``run TARGET``: one TCP-count experiment on a catalog variant or on
  ``package.module:function``; prints the verdict; exit 0 when it matches
  ``--expect`` (or none is given), 1 when it does not.
* ``list``: the client catalog, one line each.

Exit status 2 for bad usage (one line, no traceback); 3 when the harness could
not measure (e.g. the server did not start); 130 when interrupted.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import scenarios
from .clients import VARIANTS, TargetError, expectation, resolve
from .command import fill, measure_command
from .experiment import ExperimentError, ExperimentResult
from .options import (
    OPTIONS,
    OneLineParser,
    OptionError,
    Settings,
    UsageError,
    settings_from,
)
from .plots import HOW_TO_GET_PLOTS, plots_available, write_plot
from .report import comparison, plain, write_summary
from .results import write_json
from .server_process import ServerError, ServerProcess
from .verdict import GROWTH, PLATEAU, format_sockets

COMPARE_PLAN = (
    ("persistent_connections", "persistent connections"),
    ("idle_handling", "idle handling"),
    ("close_on_error", "close on error"),
    ("tcp_count", "TCP count"),
)


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("experiment options (also LEAK_* environment variables)")
    for option in OPTIONS:
        group.add_argument(option.flag, dest=option.name, metavar=option.name.upper(), default=None,
                           help=f"{option.help} (default {option.default}; env {option.env})")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m harness",
        description="Reproduce, measure and gate TCP connection leaks in HTTP clients.",
        epilog="exit status: 0 verdict as expected, 1 not as expected, 2 bad usage, "
               "3 nothing could be measured, 130 interrupted (results kept, marked incomplete)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    compare = sub.add_parser("compare", help="faulty and fixed side by side; prints the measured comparison table")
    _add_experiment_options(compare)
    run = sub.add_parser("run", help="judge one client: growth (a leak) or plateau")
    run.add_argument("target", metavar="TARGET", nargs="?",
                     help="a catalog name (see list), or package.module:function (one request to the URL given)")
    run.add_argument("--cmd", metavar="COMMAND",
                     help="judge a command instead, in any language: a shell command whose {url}, {host} and {port} "
                          "are filled in; it runs until it ends or --duration runs out")
    run.add_argument("--expect", choices=(GROWTH, PLATEAU), help="exit 1 unless the verdict is this")
    run.add_argument("--json", metavar="FILE", help="also write the result JSON to FILE")
    _add_experiment_options(run)
    sub.add_parser("list", help="the client catalog: every variant run accepts, one line each")
    bench = sub.add_parser("bench", help="measure the sampler, the server at scale, and time to a verdict; "
                                         "writes bench.json")
    bench.add_argument("--only", metavar="PARTS", default="sampler,server,verdict",
                       help="comma-separated parts to run: sampler, server, verdict (default all)")
    _add_experiment_options(bench)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from({option.name: getattr(args, option.name) for option in OPTIONS})


def _say(line: str) -> None:
    print(line, flush=True)


def _measure(scenario: str, target: str, settings: Settings, expect: str | None, progress) -> ExperimentResult:
    with ServerProcess(delay=settings.delay) as server:
        return scenarios.measure(scenario, target, settings, server, expect=expect, progress=progress)


def cmd_compare(args: argparse.Namespace) -> int:
    settings = _settings(args)
    plan = [(target, scenario, title) for target in ("faulty", "fixed") for scenario, title in COMPARE_PLAN]
    _say(f"comparing faulty and fixed: {len(plan)} experiments, server delay {settings.delay} s, "
         f"results in {settings.results_dir}/")
    results: list[ExperimentResult] = []
    started = time.monotonic()
    try:
        for i, (target, scenario, title) in enumerate(plan, 1):
            _say(f"[{i}/{len(plan)}] {target}: {title}")
            result = _measure(scenario, target, settings, scenarios.default_expectation(target),
                              lambda line: _say(f"      {line}"))
            results.append(result)
            _say(f"      {'passed' if result.passed else 'FAILED'} in {result.duration_s:.2f} s"
                 + ("" if result.passed else f": {result.verdict.summary if result.verdict else result.error}"))
    finally:
        if results:
            md, _ = write_summary(results, settings.results_path)
    _say("")
    _say(plain(comparison(results)))
    _say(f"{sum(r.passed for r in results)}/{len(results)} experiments passed in {time.monotonic() - started:.1f} s; "
         f"table: {md}")
    _say(_plot(results, settings.results_path / "compare.png", "faulty and fixed, measured"))
    return 0 if all(r.passed for r in results) else 1


def _plot(results: list[ExperimentResult], path: Path, title: str) -> str:
    try:
        written = write_plot(results, path, title)
    except (OSError, ValueError, RuntimeError) as exc:  # a picture is extra: never lose the verdict to it
        return f"no plot: {type(exc).__name__}: {exc}"
    if written is not None:
        return f"plot: {written}"
    return f"no plot: {HOW_TO_GET_PLOTS}" if not plots_available() else "no plot: nothing was sampled"


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if (args.target is None) == (args.cmd is None):
        raise UsageError("run needs a TARGET or --cmd COMMAND (one of them)")
    json_path = Path(args.json) if args.json else None
    if json_path is not None and json_path.is_dir():
        raise UsageError(f"--json {args.json}: is a directory")
    if args.cmd is not None:
        return _run_command(args, settings, json_path)
    client = resolve(args.target, settings.delay, settings.idle_timeout)  # fail fast, before a server starts
    (getattr(client, "close", None) or (lambda: None))()
    _say(f"running {args.target}: rounds of {settings.cycles} cycles, server delay {settings.delay} s")
    result = _measure("tcp_count", args.target, settings, args.expect, lambda line: _say(f"  {line}"))
    if json_path is not None:
        write_json(json_path, result.as_dict())
    verdict = result.verdict
    assert verdict is not None and verdict.trend is not None
    f = result.figures
    _say(f"verdict: {verdict.trend.verdict}  ({verdict.trend.reason})")
    _say(f"  requests {f['requests']} ({f['failed']} failed), peak in flight {f['peak_in_flight']}, "
         f"kept after each round {' -> '.join(map(str, f['residuals']))}")
    _say(f"  churn: {f['new_connections_per_request']:.2f} new connections and "
         f"{f['time_wait_per_request']:.2f} TIME_WAIT per request "
         + (f"(gated at {settings.max_churn} by --max-churn)" if settings.max_churn is not None
            else "(churn, not a leak; --max-churn gates it)"))
    if f["failed"]:
        _say(f"  warning: {f['failed']} of {f['requests']} requests failed; the first: {f['first_error']}")
    return _outcome(result, settings, "after the last round")


def _outcome(result: ExperimentResult, settings: Settings, when: str) -> int:
    """Print the checks, the failure with the sockets left, where results went; the exit status."""
    verdict = result.verdict
    assert verdict is not None
    for check in verdict.checks:
        _say(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    if not verdict.passed:
        _say(f"FAILED: {verdict.summary}")
        if result.sockets_left:
            _say(f"sockets to the server {when}:")
            _say(format_sockets(result.sockets_left))
    _say(f"results: {settings.results_path / result.name}.json")
    _say(_plot([result], settings.results_path / f"{result.name}.png", result.target))
    return 0 if verdict.passed else 1


def _run_command(args: argparse.Namespace, settings: Settings, json_path: Path | None) -> int:
    fill(args.cmd, "http://127.0.0.1:1/", "127.0.0.1", 1)  # fail fast on a bad command, before a server starts
    _say(f"running command for at most {settings.duration} s, server delay {settings.delay} s: {args.cmd}")
    with ServerProcess(delay=settings.delay) as server:
        result = measure_command(args.cmd, settings, server, expect=args.expect, progress=lambda ln: _say(f"  {ln}"))
    if json_path is not None:
        write_json(json_path, result.as_dict())
    verdict, f = result.verdict, result.figures
    assert verdict is not None and verdict.trend is not None
    ended = "stopped by the harness" if f["stopped_by_harness"] else "ended by itself"
    _say(f"verdict: {verdict.trend.verdict}  ({verdict.trend.reason})")
    _say(f"  command {ended} after {f['ran_s']:.1f} s, exit status {f['exit_status']}; "
         f"{f['requests']} requests ({f['requests_per_s']:.1f}/s), at most {f['peak_held']} sockets held")
    _say(f"  churn: {f['new_connections_per_request']:.2f} new connections per request, "
         f"{f['time_wait_per_s']:.1f} TIME_WAIT per second")
    if f["exit_status"] not in (0, None) and not f["stopped_by_harness"] and f["stderr_tail"]:
        _say("  the command failed; its stderr ends:")
        _say("\n".join("    " + line for line in f["stderr_tail"].splitlines()))
    return _outcome(result, settings, "at the end")


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench, table

    settings = _settings(args)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in ("sampler", "server", "verdict")]
    if unknown or not parts:
        raise UsageError(f"--only {args.only!r}: parts are sampler, server, verdict")
    figures, path = run_bench(settings, parts, _say)
    _say("")
    _say(table(figures))
    _say(f"figures: {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    width = max(len(v.name) for v in VARIANTS)
    for v in VARIANTS:
        _say(f"{v.name:<{width}}  {v.library:<8}  {v.kind:<6} -> {expectation(v.kind):<7}  {v.summary}")
    _say(f"{len(VARIANTS)} variants; judge one with: python -m harness run NAME")
    return 0


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # clean up (servers, results) on SIGTERM too
    # started from a background job, SIGINT arrives ignored and Python leaves it so: take it back,
    # so that ^C or kill -INT always stops the run cleanly
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("a command is needed: compare, run, list or bench (see --help)")
        commands = {"compare": cmd_compare, "run": cmd_run, "list": cmd_list, "bench": cmd_bench}
        return commands[args.command](args)
    except (UsageError, OptionError, TargetError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except (ServerError, ExperimentError) as exc:
        print(f"harness: could not measure: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("harness: interrupted; what was measured is in the results directory, marked incomplete", file=sys.stderr)
        return 130
