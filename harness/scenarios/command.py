"""``command``: a client that is a program running its own loop, judged from the
time series of its held sockets (``harness.judging.series``).

The command is started in a process group of its own, sampled until it ends by
itself or ``settings.duration`` runs out (then its group is stopped), and
judged. Requests and new connections are counted by the server; requests in
flight too, by the server's connections from accept to answer, plus (netlink
sampler) the client's sockets holding an answer it has not read yet
(``harness.sampling.recorder.UnreadAnswers``).
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from ..driving import CommandFigures, CommandProcess, ExperimentError, ExperimentResult, Progress, ServerInFlight, fill
from ..driving.result import Churn
from ..judging import EXTEND_FRACTION, SeriesTrend, churn_gate, combine, judge_series, sample_longer
from ..options import Settings
from ..sampling import HELD_STATES, Sample, SeriesRecorder, SocketCounter
from ..server import ServerProcess

PROGRESS_EVERY_S = 1.0


def judge(samples: Sequence[Sample]) -> SeriesTrend:
    """The series verdict on held sockets, with the server's peak in flight. ``samples`` may be a
    recorder's list that its thread still appends to: it is read once (read three times, a loaded
    soak's run got three lengths, and a ValueError)."""
    samples = list(samples)
    return judge_series([s.t for s in samples], [s.held for s in samples], [s.in_flight_peak for s in samples])


def command(server: ServerProcess, settings: Settings, result: ExperimentResult, progress: Progress,
            expect: str | None, cmd: str) -> None:
    """Run ``cmd`` against ``server`` for at most ``settings.duration`` s (longer
    while still undecided: ``harness.judging.sample_longer``) and judge its held sockets over time;
    fills in ``result`` (its samples even when interrupted)."""
    filled = fill(cmd, server.url, server.host, server.port)
    counter = SocketCounter(server.host, server.port, server.own_ports, settings.sampler)
    in_flight = ServerInFlight(server)
    recorder = SeriesRecorder(counter, settings.sample_interval, in_flight.window, count_unread=True)
    started = time.monotonic()
    process: CommandProcess | None = None
    try:
        counter.ignore_existing_time_wait()
        before = server.stats()
        own_before = server.stats_connections
        recorder.start()
        process = CommandProcess(filled)  # over HTTPS it inherits SSL_CERT_FILE and the like (runner._trusting)
        progress(f"started: {filled}")
        deadline = started + settings.duration
        hard_end = started + settings.deadline  # --deadline bounds the whole experiment, extension included
        next_progress = started + PROGRESS_EVERY_S
        extensions = 0
        final = None  # the last sample while the command runs, taken where the verdict is judged
        while True:
            if process.wait(min(next_progress, deadline, hard_end) - time.monotonic()):
                break
            now = time.monotonic()
            if not server.alive():
                raise ExperimentError("the slow server died while the command ran" + server.tail())
            if now >= hard_end:
                raise ExperimentError(f"the experiment passed its deadline of {settings.deadline:g} s (--deadline); "
                                      "what was measured is kept, marked incomplete")
            if now >= deadline:
                # judged on the samples the verdict will rest on, this last one included (deciding without it,
                # a loaded soak once stopped at a plateau that the last sample made undecided)
                final = recorder.sample("deadline")
                trend = judge(recorder.samples)
                if not sample_longer([trend], extensions):
                    break
                more = EXTEND_FRACTION * settings.duration
                if deadline + more > hard_end:  # an undecided verdict, not an experiment cut at its deadline
                    progress(f"undecided after {now - started:.1f} s ({trend.reason}); sampling {more:.1f} s more "
                             f"would pass --deadline {settings.deadline:g} s")
                    break
                # not sure yet: sample longer rather than guess
                extensions, deadline = extensions + 1, deadline + more
                progress(f"undecided after {now - started:.1f} s ({trend.reason}): sampling {more:.1f} s more")
                continue
            last = recorder.samples[-1] if recorder.samples else None
            if last is not None:
                progress(f"{now - started:5.1f} s: {last.held} sockets held, {last.time_wait} TIME_WAIT, "
                         f"{last.in_flight} requests in flight")
            next_progress = now + PROGRESS_EVERY_S
        ran_s = time.monotonic() - started
        ended_by_itself = process.proc.poll() is not None
        # what the command holds at its end: only while it is alive (exit closes every socket)
        if ended_by_itself:
            final = None
        elif final is None:
            final = recorder.sample("end")
        final_snapshot = recorder.last
        # evidence beside the series verdict, never a verdict by itself: how long each held socket has idled
        info = counter.info() if final is not None else None
        idle_ages = None if info is None else sorted(
            ({"local_port": port, "state": row.state, "idle_ms": row.last_received_ms}
             for port, row in info.items() if row.state in HELD_STATES), key=lambda s: -s["idle_ms"])
        status = process.stop()
        recorder.stop()
        alive_until = (final.t if final else ran_s - settings.sample_interval)
        samples = [s for s in recorder.samples if s.t <= alive_until]
        after = server.stats()
        requests = after["requests_served"] - before["requests_served"]
        new = after["connections_accepted"] - before["connections_accepted"] - (server.stats_connections - own_before)
        time_wait = samples[-1].time_wait if samples else 0
        stderr_tail = process.stderr.text()
        figures = CommandFigures(
            command=filled, exit_status=status, stopped_by_harness=process.stopped_by_harness,
            ran_s=round(ran_s, 3), requests=requests, requests_per_s=round(requests / ran_s, 2),
            new_connections=new, new_connections_per_request=Churn.per_request(new, requests),
            time_wait=time_wait, time_wait_per_request=Churn.per_request(time_wait, requests),
            time_wait_per_s=round(time_wait / ran_s, 2),
            peak_held=max((s.held for s in samples), default=0), peak_in_flight=after["peak_in_flight"],
            hung_up_early=after["hung_up_early"] - before["hung_up_early"],
            stdout_tail=process.stdout.text(), stderr_tail=stderr_tail, extended=extensions > 0, idle_ages=idle_ages,
        )
        result.figures = figures
        result.samples = recorder.samples
        if requests == 0:
            raise ExperimentError(f"the command made no request to the server in {ran_s:.1f} s "
                                  f"(exit status {status}){_tail_note(stderr_tail)}")
        trend = judge(samples)
        figures.floors = list(trend.floors)
        result.verdict = combine(expect, trend, churn_gate(settings.max_churn, figures.new_connections_per_request))
        result.sockets_left = list(final_snapshot.sockets if final_snapshot else ())
    finally:
        try:
            if process is not None:
                process.stop()
        finally:
            recorder.stop()
            if not result.samples:
                result.samples = list(recorder.samples)


def _tail_note(stderr: str) -> str:
    return f"; its stderr ends:\n{stderr}" if stderr.strip() else ""
