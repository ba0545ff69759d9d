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

from ..clients import VARIANTS, TargetError, expectation
from ..driving import ExperimentError, talks_to_the_server
from ..judging import VERDICTS
from ..options import OPTIONS, Settings, output_file, settings_from
from ..values import OneLineParser, OptionError, UsageError, argparse_type, positive_int
from ..report import PLOTS_OFF, REPORT_NAME, comparison, draw, plain, write_json, write_report, write_session
from ..report.text import figures_lines, outcome_lines, result_path_line, short_outcome, verdict_line
from ..runner import Experiment
from ..scenarios import SEED_PAIR, SEED_ROWS, WATCH, default_expectation
from ..server import ServerError, use_forker
from .common import complain, keep, run_and_write


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("experiment options (also LEAK_* environment variables)")
    for option in OPTIONS:
        group.add_argument(option.flag, dest=option.name, metavar=option.name.upper(), default=None,
                           **option.flag_kwargs, help=f"{option.help} (default {option.default_text}; env {option.env})")


def build_parser(prog: str = "python -m harness") -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
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
                          "are filled in; it runs until it ends or --duration runs out. Without them it is watched "
                          "as watch --pid is, against whatever it talks to")
    run.add_argument("--expect", choices=VERDICTS, help="exit 1 unless the verdict is this")
    run.add_argument("--json", metavar="FILE", type=argparse_type(output_file),
                     help="also write the result JSON to FILE (checked before the run starts)")
    _add_experiment_options(run)
    watch = sub.add_parser("watch", help="judge a running process: its held sockets by remote endpoint over "
                                          "--duration seconds (growth, plateau or undecided for each)")
    watch.add_argument("--pid", required=True, type=argparse_type(positive_int), help="the process (its children too)")
    watch.add_argument("--expect", choices=VERDICTS, help="exit 1 unless the verdict is this")
    watch.add_argument("--json", metavar="FILE", type=argparse_type(output_file),
                       help="also write the result JSON to FILE (checked before the watch starts)")
    _add_experiment_options(watch)
    sub.add_parser("list", help="the client catalog: every variant run accepts, one line each")
    bench = sub.add_parser("bench", help="measure the sampler, the server at scale, and time to a verdict; "
                                         "writes bench.json")
    bench.add_argument("--only", metavar="PARTS", default="sampler,server,verdict,sites",
                       help="comma-separated parts to run: sampler, server, verdict, sites (default all)")
    _add_experiment_options(bench)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from({option.name: getattr(args, option.name) for option in OPTIONS})


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_compare(args: argparse.Namespace) -> int:
    settings = _settings(args)
    use_forker()  # a server an experiment: forked, ~10 ms of CPU each instead of ~90
    plan = [(target, row) for target in SEED_PAIR for row in SEED_ROWS]
    _say(f"comparing faulty and fixed: {len(plan)} experiments, server delay {settings.delay} s, "
         f"results in {settings.results_dir}/")
    results = []
    started = time.monotonic()
    finished = False
    try:
        for i, (target, row) in enumerate(plan, 1):
            _say(f"[{i}/{len(plan)}] {target}: {row.progress}")
            experiment = Experiment(target, scenario=row.scenario, settings=settings,
                                    expect=default_expectation(target), name=f"{row.scenario}-{target}")
            result = run_and_write(experiment, settings.results_path, progress=lambda line: _say(f"      {line}"))
            results.append(result)
            _say(f"      {short_outcome(result)}")
        finished = True
    finally:
        written: list = []
        if results:
            # interrupted, it writes the table and the page (milliseconds) but draws no PNG: matplotlib takes seconds
            # on a loaded machine (a soak's ^C once waited > 15 s on it), and ^C means stop now
            keep(lambda: written.append(write_session(results, settings.results_path, "compare.png",
                                                      "faulty and fixed, measured", settings.plots and finished)),
                 "the summary", complain)
    _say("")
    _say(plain(comparison(results)))
    _say(f"{sum(r.passed for r in results)}/{len(results)} experiments passed in {time.monotonic() - started:.1f} s"
         + (f"; table: {written[0].table}" if written else ""))
    if written:
        _say(written[0].picture)
        _say(f"report: {written[0].report}")
    return 0 if all(r.passed for r in results) else 1


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if (args.target is None) == (args.cmd is None):
        raise UsageError("run needs a TARGET or --cmd COMMAND (one of them)")
    # a command that names no slow server talks to what it likes: it is watched, not driven
    watched = args.cmd is not None and args.cmd.strip() != "" and not talks_to_the_server(args.cmd)
    experiment = Experiment(args.target, cmd=args.cmd, settings=settings, expect=args.expect,
                            scenario=WATCH if watched else None)
    if args.cmd is not None:
        _say(f"running command for at most {settings.duration} s, server delay {settings.delay} s: {args.cmd}")
    else:
        _say(f"running {args.target}: rounds of {settings.cycles} cycles, server delay {settings.delay} s")
    return _judge(experiment, args.json, "at the end" if args.cmd is not None else "after the last round")


def cmd_watch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    experiment = Experiment(pid=args.pid, settings=settings, expect=args.expect)
    _say(f"watching pid {args.pid} for {settings.duration} s, a sample every {settings.sample_interval} s")
    return _judge(experiment, args.json, "at the end")


def _judge(experiment: Experiment, json_file: str | None, when: str) -> int:
    """Run one experiment, keep its files, print its verdict and figures; the exit status."""
    settings = experiment.settings
    result = run_and_write(experiment, settings.results_path, progress=lambda line: _say(f"  {line}"))
    if json_file is not None:
        keep(lambda: write_json(Path(json_file), result.as_dict()), f"--json {json_file}", complain)
    _say(verdict_line(result))
    for line in [*figures_lines(result, settings.max_churn), *outcome_lines(result, when)]:
        _say(line)
    _say(result_path_line(result, settings.results_path))
    _say(draw([result], settings.results_path / f"{result.name}.png", result.target) if settings.plots else PLOTS_OFF)
    keep(lambda: _say(f"report: {write_report([result], settings.results_path, result.target)}"), REPORT_NAME,
         complain)
    return 0 if result.passed else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import PARTS, run_bench, table

    settings = _settings(args)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise UsageError(f"--only {args.only!r}: parts are {', '.join(PARTS)}")
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


SCRIPT = "tcp-leaks"  # the console script pip installs: the same as python -m harness


def script() -> int:
    """``tcp-leaks ...``: the console script's entry point."""
    return main(prog=SCRIPT)


def main(argv: Sequence[str] | None = None, prog: str = "python -m harness") -> int:
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # clean up (servers, results) on SIGTERM too
    # started from a background job, SIGINT arrives ignored and Python leaves it so: take it back,
    # so that ^C or kill -INT always stops the run cleanly
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("a command is needed: compare, run, watch, list or bench (see --help)")
        commands = {"compare": cmd_compare, "run": cmd_run, "watch": cmd_watch, "list": cmd_list, "bench": cmd_bench}
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
