"""The exact check: after the rounds, sweeps (bursts larger than all a client holds,
made concurrent by the server's barrier) prove a socket abandoned when it received
nothing through one. Rare leaks the rounds pass are caught; healthy shapes never are."""
from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import pytest

from harness.faces.cli import main
from harness.judging import AbandonedSocket, abandoned_through, judge_sweeps, sweep_size
from harness.sampling.netlink import tcp_info

from .test_server import REQUEST_11, connect, read_response
from .tools import run_harness
from .waiting import wait_for


ROOT = Path(__file__).resolve().parent.parent
AT_ONCE = 4  # runs sharing the 2 cores: loaded, as a verdict must hold on a busy machine, yet each in time
RUN_DEADLINE_S = 120

# name: (target, verdict by rounds, verdict of the sweeps)
CASES = {
    "leak-every-50": ("tests.sample_clients:leak_every_50", "plateau", "growth"),
    "leak-every-100": ("tests.sample_clients:leak_every_100", "plateau", "growth"),
    "pool-of-one": ("tests.sample_clients:pool_of_one", "plateau", "plateau"),
    "pool-of-500": ("tests.sample_clients:pool_of_500", "plateau", "plateau"),
    "two-pools": ("tests.sample_clients:two_pools", "plateau", "plateau"),
    # released at the first moment more were in flight than it held, the burst left the slow pool's oldest
    # connections idle (judged growth): the answers wait for the whole burst in flight, or the window's end
    "two-pools-one-slow": ("tests.sample_clients:two_pools_one_slow", "plateau", "plateau"),
    # its sweep's window ended with ~8 of the slow session's 20 in flight, fewer than it held: idle sockets found
    # through a burst not all in flight prove nothing (judged growth without that rule); the retry's longer window
    # finds none
    "two-pools-one-slower": ("tests.sample_clients:two_pools_one_slower", "plateau", "plateau"),
    "http10-close": ("tests.sample_clients:http10_close", "plateau", "plateau"),
    "aiohttp-default": ("tests.sample_clients:aiohttp_default", "plateau", "plateau"),
    "requests-large-pool": ("tests.sample_clients:requests_large_pool", "plateau", "plateau"),
}


# A pool that keeps every connection it opens grows by each sweep's burst, so the next sweep must reach past all
# of it: on a starved machine its burst may not be all in flight within the most a retry may hold its answers
# (HOLD_RETRY_MOST_S, bounded by the fixed variants' 1 s read timeout). A loaded soak (1 run of 41) had 4 of 21
# in flight at once in 0.60 s, then 28 of 87 in 0.75 s: an honest inconclusive, judged by the rounds alone, and
# still never growth
MAY_MISS = {"pool-of-500"}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    base = tmp_path_factory.mktemp("swept")
    runs = {name: (["run", target, "--results-dir", str(base / name)], ROOT) for name, (target, _, _) in CASES.items()}
    return run_harness(runs, base, at_once=AT_ONCE, deadline_s=RUN_DEADLINE_S)


@pytest.mark.parametrize("name", list(CASES))
def test_sweeps_judge_right(swept, name):
    _, by_rounds, by_sweeps = CASES[name]
    status, out, err, data = swept[name]
    assert data is not None and data["complete"], out + err
    judgement = data["judgement"]
    assert judgement["trend"]["verdict"] == by_rounds, out
    if name in MAY_MISS and judgement["sweeps"]["verdict"] == "undecided":
        assert re.search(r"sweep \d+: \d+ requests, but \S+ had \d+ of \d+ in flight at once in [\d.]+ s: proves "
                         r"nothing\n", out) and "exact check: inconclusive: " in out, out
        assert data["verdict"] == by_rounds and data["figures"]["abandoned"] == [], out
        return
    assert judgement["sweeps"]["verdict"] == by_sweeps, out
    assert data["verdict"] == by_sweeps, out  # the verdict word: growth when either says so
    abandoned = data["figures"]["abandoned"]
    if by_sweeps == "growth":
        # every N-th request leaks; the sweeps test every request sent before the last one
        assert 1 <= len(abandoned) <= judgement["sweeps"]["requests"], out
        assert f"socket{'s' if len(abandoned) > 1 else ''} abandoned (held, no data through a burst of" in out
        assert all(s["state"] == "ESTABLISHED" and s["idle_ms"] >= 0 for s in abandoned)
    else:
        assert abandoned == [], out
        assert f"no socket abandoned in {judgement['sweeps']['requests']} requests" in out


def test_without_tcp_info_the_exact_check_is_off_and_says_why(tmp_path, capsys):
    # background samples every 0.2 s, not 0.05: each psutil scan reads every socket and descriptor on the machine,
    # and the verdict rests on the rounds' own readings, not on these
    assert main(["run", "fixed", "--sampler", "psutil", "--sample-interval", "0.2",
                 "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "exact check off: the psutil sampler cannot read tcp_info (netlink can); judged by rounds alone" in out
    data = json.loads((tmp_path / "tcp_count-fixed.json").read_text())
    # judged as before, by rounds alone: 3 at least. Under load the trend can still be undecided after 3 (the fixed
    # client's idle reaper racing a slow psutil scan: residuals 0, 0, 2 in 3 of 15 loaded soak runs), and a 4th
    # round is the rule's own answer to that
    assert len(data["rounds"]) >= 3 and data["judgement"]["sweeps"] is None, data["rounds"]
    assert data["figures"]["abandoned"] is None


def test_tcp_info_tells_a_socket_that_received_from_one_that_did_not(start_slow_server):
    server = start_slow_server(delay=0.0)
    with connect(server) as used, connect(server) as idle:
        used.sendall(REQUEST_11)
        answer = read_response(used)
        # held ones only: a reused port can still carry an earlier server's TIME_WAITs
        info = wait_for(lambda: {port: row for port, row in tcp_info(server.host, server.port).items()
                                 if row[0] == "ESTABLISHED"}, lambda i: len(i) == 2)
        assert info[used.getsockname()[1]][:2] == ("ESTABLISHED", len(answer))
        assert info[idle.getsockname()[1]][:2] == ("ESTABLISHED", 0)


def test_abandoned_through_compares_bytes_of_sockets_held_on_both_sides():
    before = {1: ("ESTABLISHED", 10, 5), 2: ("ESTABLISHED", 10, 5), 3: ("CLOSE_WAIT", 0, 900), 4: ("ESTABLISHED", 0, 1)}
    after = {1: ("ESTABLISHED", 20, 1), 2: ("ESTABLISHED", 10, 700), 3: ("CLOSE_WAIT", 0, 1600), 5: ("ESTABLISHED", 9, 0)}
    found = abandoned_through(before, after)  # 1 used; 4 closed during the sweep; 5 opened during it
    assert found == [AbandonedSocket(3, "CLOSE_WAIT", 1600), AbandonedSocket(2, "ESTABLISHED", 700)]  # oldest first


def test_one_abandoned_socket_is_growth_and_none_is_a_plateau_that_says_its_reach():
    assert judge_sweeps([AbandonedSocket(7, "ESTABLISHED", 1200)], 2, 30, 240).verdict == "growth"
    clean = judge_sweeps([], 2, 188, 240)
    assert clean.verdict == "plateau" and clean.reason == ("no socket abandoned in 240 requests: a leak rarer than "
                                                           "about 1 in 240 could pass")
    assert judge_sweeps([AbandonedSocket(7, "ESTABLISHED", 1)], 1, 30, 52, inconclusive="x").verdict == "undecided"


def test_a_sweep_reaches_past_everything_held():
    assert sweep_size(held=10, peak_in_flight=18, least=20) == 28
    assert sweep_size(held=100, peak_in_flight=18, least=20) == 200
    assert sweep_size(held=0, peak_in_flight=0, least=20) == 20


def test_the_server_holds_answers_until_enough_are_in_flight(start_slow_server):
    server = start_slow_server(delay=0.0)
    assert server.hold(3, 30.0) == {"holding_until": 3}
    answers: list[bytes] = []

    def ask():
        with connect(server) as s:
            s.sendall(REQUEST_11)
            answers.append(read_response(s))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    threads[0].start()
    threads[1].start()
    wait_for(server.stats, lambda st: st["active_requests"] == 2)
    assert answers == []  # two in flight: both held (the deadline is 30 s away)
    threads[2].start()  # the third reaches the barrier: all three are answered after the delay (0 s)
    for t in threads:
        t.join(timeout=10)
    assert len(answers) == 3 and all(a.startswith(b"HTTP/1.1 200") for a in answers)
    stats = server.stats()
    assert stats["holds_reached"] == 1 and stats["holds_missed"] == 0


def test_a_barrier_not_reached_answers_at_its_deadline_and_is_counted(start_slow_server):
    server = start_slow_server(delay=0.0)
    server.hold(5, 0.2)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        assert read_response(s).startswith(b"HTTP/1.1 200")  # after 0.2 s: one request never makes five
    stats = wait_for(server.stats, lambda st: st["holds_missed"] == 1)
    assert stats["holds_reached"] == 0


def test_a_missed_barrier_with_then_lets_its_burst_go_after_then(start_slow_server):
    """A burst capped in flight below its barrier (aiohttp's limit_per_host) is answered at the
    barrier's deadline, and the rest of it after ``then`` too: not one delay (here 30 s) a turn."""
    server = start_slow_server(delay=30.0)
    server.hold(5, 1.0, then_s=0.0)
    with connect(server) as held:
        held.sendall(REQUEST_11)
        assert read_response(held).startswith(b"HTTP/1.1 200")  # at the deadline: one request never makes five
        with connect(server) as later:  # within as long again after it: answered after `then`, not the delay
            later.sendall(REQUEST_11)
            assert read_response(later).startswith(b"HTTP/1.1 200")
    stats = server.stats()
    assert (stats["holds_missed"], stats["holds_reached"]) == (1, 0)


def test_a_missed_barrier_tells_how_many_were_in_flight_and_a_new_one_clears_it(start_slow_server):
    """How far a burst got: the next sweep's pace is read from it."""
    server = start_slow_server(delay=30.0)
    server.hold(5, 30.0)
    with connect(server) as s:
        s.sendall(REQUEST_11)
        wait_for(server.stats, lambda st: st["active_requests"] == 1)  # in flight (held: the answer is 30 s away)
        server.hold(5, 0.0)  # a barrier whose deadline comes now, with that one request in flight
        stats = wait_for(server.stats, lambda st: st["holds_missed"] == 1)
        assert stats["in_flight_at_miss"] == 1
        server.hold(5, 30.0)
        assert server.stats()["in_flight_at_miss"] == 0  # only the latest miss is told


def test_a_missed_barrier_tells_how_long_no_request_joined_it_before_its_deadline(start_slow_server):
    """A burst that stopped rising (a pool capped in flight) from one still starting: the time from the
    last request that joined a missed barrier to its deadline."""
    server = start_slow_server(delay=30.0)
    with connect(server) as s:
        server.hold(5, 1.0)
        s.sendall(REQUEST_11)  # joins at once, then nothing more
        stats = wait_for(server.stats, lambda st: st["holds_missed"] == 1)
        # it joined within the first half of the 1 s window, however loaded the machine: 0.5 s flat at least
        assert stats["in_flight_at_miss"] == 1 and 500 <= stats["flat_at_miss_ms"] <= 1000, stats
        server.hold(5, 30.0)
        assert server.stats()["flat_at_miss_ms"] == 0  # only the latest miss is told
    with connect(server) as s:
        server.hold(5, 0.0)  # nothing joins: the whole window, 0 s here
        stats = wait_for(server.stats, lambda st: st["holds_missed"] == 2)
        assert stats["flat_at_miss_ms"] == 0, stats


def test_a_retried_sweep_gets_the_time_the_missed_ones_pace_needs():
    from harness.scenarios.seed import HOLD_RETRY_MOST_S, hold_window_s

    assert hold_window_s(100, 19) == pytest.approx(0.45)  # the usual: 0.25 s and 2 ms a request
    # 10 of 19 in flight in 0.45 s: 67 need 3.0 s at that pace, 4.5 with the margin: capped
    assert hold_window_s(132, 67, missed=(10, 0.45)) == HOLD_RETRY_MOST_S
    # 10 in flight in 0.31 s (a barrier past them missed): 9 need 0.28 s at that pace, 0.42 with the margin, after
    # the 0.25 s floor
    assert hold_window_s(29, 9, missed=(10, 0.31)) == pytest.approx(0.25 + 1.5 * 9 * 0.31 / 10)
    assert hold_window_s(29, 9, missed=(0, 0.31)) == HOLD_RETRY_MOST_S  # nothing came: no pace to go by
    assert hold_window_s(500, 9, missed=(8, 0.31)) == pytest.approx(1.25)  # never shorter than the usual
    assert HOLD_RETRY_MOST_S + 0.2 < 1.0  # a held answer (window, then the delay) within the fixed variants' timeout


def test_a_pool_capped_in_flight_at_what_it_holds_is_inconclusive(tmp_path, capsys):
    """A pool that never has more than 3 requests in flight misses every barrier past the 3 it
    holds, its retry's too (fitted to its pace, so at most ``HOLD_RETRY_MOST_S``): inconclusive,
    and judged by the rounds alone."""
    from harness.scenarios.seed import HOLD_RETRY_MOST_S

    from . import sample_clients

    try:
        assert main(["run", "tests.sample_clients:capped_at_three", "--budget", "60", "--plots", "off",
                     "--results-dir", str(tmp_path)]) == 0
    finally:
        sample_clients.capped_pool.close()
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  sweep ")]
    retry = re.fullmatch(r"  sweep 2: (\d+) requests, but \S+ had 3 of 4 in flight at once in ([\d.]+) s: proves nothing",
                         said[-1])
    assert len(said) == 2 and retry, said  # capped: 3 in flight at the deadline, where 4 were needed
    assert float(retry[2]) <= HOLD_RETRY_MOST_S + 0.005, said  # printed to 0.01 s
    data = json.loads(next(tmp_path.glob("tcp_count-*.json")).read_text())
    assert data["judgement"]["sweeps"]["verdict"] == "undecided" and data["verdict"] == "plateau", said


def test_a_missed_sweep_is_stuck_only_where_it_ended_as_before_and_nothing_joined_its_second_half():
    from harness.scenarios.seed import stuck_servers

    window_s = 0.4  # half of it: 200 ms
    assert stuck_servers([30], [30], [30], [350], window_s) == [0]  # capped: reached 30 early, then nothing
    assert stuck_servers([14], [14], [14], [20], window_s) == []  # as many, but still starting its requests
    assert stuck_servers([29], [30], [30], [350], window_s) == []  # not where it ended before
    assert stuck_servers([30], [30], [None], [350], window_s) == []  # the sweep before had its whole burst
    assert stuck_servers([31], [30], [31], [350], window_s) == []  # more in flight than held: not a miss here
    assert stuck_servers([5, 30], [5, 30], [9, 30], [350, 200], window_s) == [1]  # per server; 200 is half


def test_a_pool_capped_in_flight_is_not_retried_once_stuck_where_it_was(tmp_path, capsys):
    """A pool that blocks at 30: its first sweep has 30 in flight at once, more than the ~17 it
    held (proved), and it then holds 30. The next sweep needs 31 and misses with 30 in flight again,
    as when the first one's window ended, none more sent in its second half: a pool capped in flight,
    not retried (a pool slow to start its burst still sends then); what the first proved stands."""
    from . import sample_clients

    try:
        assert main(["run", "tests.sample_clients:capped_at_thirty", "--plots", "off",
                     "--results-dir", str(tmp_path)]) == 0
    finally:
        sample_clients.capped_pool_of_thirty.close()
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("  sweep ")]
    first = re.fullmatch(r"  sweep 1: \d+ concurrent requests \((\d+) in flight at once\), 0 of (\d+) held sockets "
                         r"received nothing", said[0])
    # its cap, 30, at once: 29 in a loaded soak's run, the last request not in flight when the window ended
    assert first and int(first[2]) < int(first[1]) <= 30, out
    second = re.fullmatch(r"  sweep 2: \d+ requests, but \S+ had (\d+) of (\d+) in flight at once in [\d.]+ s: "
                          r"proves nothing; (.*)", said[1])
    # it then needs one more than it holds, 31 at most; a starved window ends further short (24 of 31 with a sampling
    # profiler beside the suite), not stuck where the first ended: tried again below
    assert second and int(second[1]) < int(second[2]) <= 31, out
    stuck = re.fullmatch(rf"\S+ had {first[1]} again, as when sweep 1's window ended, none more in its last "
                         r"([\d.]+) s: a pool capped in flight, not tried again", second[3])
    if stuck:  # stuck where the first sweep's window ended, nothing more sent for half the window at least
        assert len(said) == 2 and float(stuck[1]) >= 0.1, out  # half a window of 0.25 s at least
    else:  # a loaded machine ended one window one short, or was still sending at its end: retried
        assert len(said) == 3 and second[3] == "once more" and "proves nothing" in said[2], out
    sweeps = json.loads(next(tmp_path.glob("tcp_count-*.json")).read_text())["judgement"]["sweeps"]
    assert sweeps["verdict"] == "plateau" and sweeps["sweeps"] == len(said), sweeps


def test_a_sweep_whose_requests_fail_says_so(tmp_path, capsys):
    """A failed request proves nothing of its socket: the sweeps' failures are counted apart from
    the rounds' and named, and a sweep none of whose requests reached the server proves nothing."""
    from . import sample_clients

    try:
        assert main(["run", "tests.sample_clients:fails_after_the_rounds", "--plots", "off",
                     "--results-dir", str(tmp_path)]) == 0
    finally:
        sample_clients._fails_after_pool.close()
    out = capsys.readouterr().out
    figures = json.loads(next(tmp_path.glob("tcp_count-*.json")).read_text())["figures"]
    # every request past the rounds' failed: all the sweeps' (a third round, under load, would add its own)
    assert figures["sweep_requests"] > 0 and figures["sweep_failed"] == figures["sweep_requests"], figures
    assert figures["sweep_errors"] == {"ConnectionRefusedError": figures["sweep_failed"]}, figures
    assert (f"warning: {figures['sweep_failed']} of the sweeps' {figures['sweep_requests']} requests failed "
            f"(ConnectionRefusedError {figures['sweep_failed']}): a failed request proves nothing of its socket"
            in out), out
    said = [line for line in out.splitlines() if line.startswith("  sweep ")]
    assert said and all(re.match(r"  sweep \d+: (\d+) requests \(\1 failed\), but \S+ had 0 of \d+ in flight", line)
                        for line in said), said
    assert "exact check: inconclusive: " in out and "(too many of its requests failed, and a failed" in out, out


def test_a_client_slow_to_start_its_burst_is_still_proved(tmp_path, capsys, monkeypatch):
    """A pool of 500 whose requests start one after another, 60 ms each (a starved machine's
    pace): its first sweep misses the barrier, and the retry, fitted to that pace, proves every
    held socket received data (with the usual window it missed again: inconclusive)."""
    from harness.scenarios import seed

    from . import sample_clients

    # its retry needs ~1.3 s at its pace: the cap kept for the fixed variants' read timeout is lifted, as a user
    # whose client waits longer may (the pace's fitting is what is tested here; the cap, above)
    monkeypatch.setattr(seed, "HOLD_RETRY_MOST_S", 2.5)
    try:
        assert main(["run", "tests.sample_clients:slow_to_start", "--budget", "60", "--plots", "off",
                     "--results-dir", str(tmp_path)]) == 0
    finally:
        sample_clients.slow_start_pool.close()  # its pool keeps what it opened: this process's sockets
    out = capsys.readouterr().out
    data = json.loads(next(tmp_path.glob("tcp_count-*.json")).read_text())
    sweeps = data["judgement"]["sweeps"]
    assert "sweep 1: " in out and "proves nothing; once more" in out, out
    assert sweeps["verdict"] == "plateau" and sweeps["sweeps"] == 2, out


def test_a_pool_slow_to_start_that_then_holds_what_it_had_in_flight_is_swept_again(tmp_path, capsys, monkeypatch):
    """A pool of 500 whose requests start 20 ms apart: its first sweep's window ends with ~15 in flight (proved:
    more than it held), and its later requests reuse those connections, so it then holds as many as it had in
    flight, as a pool capped in flight would. It is swept again all the same: a loaded soak's client leaking every
    50th request looked so, and the sweep not sent would have found the first one's leaks."""
    from . import sample_clients

    # 50 starts a second: a sweep's 27 requests take 0.54 s to start, past its ~0.3 s window
    monkeypatch.setattr(sample_clients, "SLOW_START_S", 0.02)
    try:  # a budget past the first sweep's requests (100, not 60): a second is due
        assert main(["run", "tests.sample_clients:slow_to_start", "--budget", "100", "--plots", "off",
                     "--results-dir", str(tmp_path)]) == 0
    finally:
        sample_clients.slow_start_pool.close()
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("  sweep ")]
    assert len(said) >= 2 and said[1].startswith("  sweep 2: "), out  # sent, whatever it then found
    assert "not sent" not in out and "a pool capped in flight" not in out, out


@pytest.mark.parametrize("query", ["until=0&most=1", "until=3", "most=1", "until=x&most=1", "until=3&most=1e9"])
def test_a_bad_hold_is_400(start_slow_server, query):
    server = start_slow_server(delay=0.0)
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(f"GET /hold?{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert read_response(s).startswith(b"HTTP/1.1 400")


def test_once_reached_a_hold_answers_the_burst_after_then(start_slow_server):
    """The barrier's moment is the proof; after it the burst's answers come ``then`` after
    their request (here at once) instead of the delay (here 30 s), until the hold's deadline."""
    server = start_slow_server(delay=30.0)
    server.hold(1, 30.0, then_s=0.0)
    for _ in range(2):  # the first reaches the barrier (1 in flight); the second comes after it
        with connect(server) as s:
            s.sendall(REQUEST_11)
            assert read_response(s).startswith(b"HTTP/1.1 200")
    assert server.stats()["holds_reached"] == 1


@pytest.mark.parametrize("reachable_from", [2, None], ids=["second-reaches", "none-reaches"])
def test_a_first_sweep_that_proves_nothing_is_sent_once_more(monkeypatch, tmp_path, reachable_from):
    """A loaded machine can be slow to start a burst (seen in a loaded soak: 144 requests,
    never 20 at once within the hold). The first sweep's window is made to end before its
    burst goes here; the second's does not (or does): proved, or inconclusive after two."""
    from harness.faces.common import run_and_write
    from harness.options import Settings
    from harness.runner import Experiment
    from harness.server import ServerProcess

    hold, calls, windows = ServerProcess.hold, [], []

    def hold_maybe_out_of_reach(self, until, most_s, then_s=None):
        calls.append(until)
        windows.append(most_s)
        reachable = reachable_from is not None and len(calls) >= reachable_from
        # out of reach: unreachable, and its window over before the burst goes (nothing in flight at its end)
        return hold(self, until if reachable else 100_000, most_s if reachable else 0.0, then_s)

    monkeypatch.setattr(ServerProcess, "hold", hold_maybe_out_of_reach)
    lines: list[str] = []
    run_and_write(Experiment("fixed", settings=Settings(results_dir=str(tmp_path))), tmp_path, progress=lines.append)
    sweeps = json.loads((tmp_path / "tcp_count-fixed.json").read_text())["judgement"]["sweeps"]
    said = [line for line in lines if line.startswith("sweep ")]
    assert said[0].startswith("sweep 1:") and said[0].endswith("proves nothing; once more"), lines
    # the retry's window, fitted to the pace or not (under load the fixed client had 0 or 1 of its 194 requests in
    # flight in 0.64 s, and then holds 2: a slow pool), stays within the cap unless the usual one is longer
    from harness.scenarios.seed import HOLD_RETRY_MOST_S, hold_window_s
    retry_size = int(said[1].split()[2])
    assert windows[1] <= max(hold_window_s(retry_size, 1), HOLD_RETRY_MOST_S) + 1e-9, (windows, lines)
    if reachable_from is None:
        assert len(calls) == 2 and said[1].endswith("proves nothing"), lines
        assert sweeps["verdict"] == "undecided" and " requests in flight at once" in sweeps["reason"], sweeps
    else:
        assert said[1].startswith("sweep 2:") and "concurrent requests" in said[1], lines
        assert sweeps["verdict"] == "plateau" and sweeps["sweeps"] >= 2, sweeps
