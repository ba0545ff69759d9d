"""The verdicts on synthetic series: no server, no sockets."""
import pytest

from harness.judging import (
    GROWTH,
    PLATEAU,
    UNDECIDED,
    Check,
    check_bounded,
    check_equals,
    check_never_falls,
    combine,
    judge_trend,
)
from harness.sampling import format_sockets

PER_ROUND = 26  # requests in one replay of a schedule (an example: the verdict takes it as given)


@pytest.mark.parametrize(
    "residuals, peaks, verdict",
    [
        ([26, 52, 78], [18, 18, 18], GROWTH),  # every request leaves a socket
        ([8, 15, 21, 28], [18, 18, 18, 18], GROWTH),  # one socket in four requests, pool of 2 beside it
        ([2, 2, 2], [18, 18, 18], PLATEAU),  # a pool capped at 2 idle
        ([18, 18, 18], [18, 18, 18], PLATEAU),  # a large pool keeps what it once had in flight
        ([0, 0, 0], [18, 18, 18], PLATEAU),  # a connection per request, always closed
        ([12, 12, 12], [4, 4, 4], PLATEAU),  # a fixed number kept from the start does not grow with requests
        ([16, 18, 17], [18, 18, 18], PLATEAU),  # jitter within a pool's two
        # measured under CPU load: a large pool follows a peak that rose in round 3
        ([15, 15, 18, 18], [16, 16, 18, 18], PLATEAU),
        ([12, 14, 14], [12, 14, 14], PLATEAU),
    ],
    ids=["every-request", "one-in-four", "small-pool", "large-pool", "no-pool", "constant-offset", "jitter",
         "pool-follows-peak", "pool-follows-peak-early"],
)
def test_trend(residuals, peaks, verdict):
    assert judge_trend(residuals, peaks, PER_ROUND).verdict == verdict


def test_one_in_four_needs_a_fourth_round():
    # after three rounds it has not yet climbed 5 above the peak: the harness must ask for more
    assert judge_trend([8, 15, 21], [18, 18, 18], PER_ROUND).verdict == UNDECIDED


def test_pool_still_rising_is_undecided_until_it_stops():
    assert judge_trend([13, 14, 15], [18, 18, 18], PER_ROUND).verdict == UNDECIDED
    assert judge_trend([13, 14, 15, 15], [18, 18, 18, 18], PER_ROUND).verdict == PLATEAU


def test_final_round_settles_by_the_unexplained_rise():
    steady = [18] * 6
    assert judge_trend([2, 3, 4, 5, 6, 7], steady, PER_ROUND, final=True).verdict == GROWTH
    assert judge_trend([2, 3, 3, 4, 4, 4], steady, PER_ROUND, final=True).verdict == PLATEAU
    # the same rise, explained by a peak that rose with it, is a pool
    assert judge_trend([12, 13, 14, 15, 16, 17], [12, 13, 14, 15, 16, 17], PER_ROUND, final=True).verdict == PLATEAU


def test_a_first_round_that_ended_low_is_a_pools_refill_not_growth():
    """A loaded soak: the fixed client's idle connections closed while the first round settled
    (0 kept), then 5 (its idle cap) after every later round: judged growth at the sixth."""
    peaks = [14, 15, 15, 15, 15, 15]
    assert judge_trend([0, 5, 5], peaks[:3], PER_ROUND).verdict == PLATEAU
    assert judge_trend([0, 5, 5, 5, 5, 5], peaks, PER_ROUND, final=True).verdict == PLATEAU
    # still growth or undecided: the later rounds rise, or the first round's deficit is more than was in flight
    assert judge_trend([0, 5, 10], peaks[:3], PER_ROUND).verdict == UNDECIDED
    assert judge_trend([0, 26, 52], [18, 18, 18], PER_ROUND).verdict == GROWTH
    assert judge_trend([0, 1, 2, 3, 4, 5], [18] * 6, PER_ROUND, final=True).verdict == GROWTH
    assert judge_trend([0, 20, 20], [15, 15, 15], PER_ROUND).verdict == GROWTH


def test_trend_figures():
    trend = judge_trend([26, 52, 78], [18, 18, 18], PER_ROUND)
    assert (trend.rise, trend.unexplained_rise, trend.excess_over_peak) == (52, 52, 60)
    assert trend.sockets_per_request == pytest.approx(1.0)
    assert "52 more sockets" in trend.reason


def test_trend_needs_two_rounds_with_peaks():
    with pytest.raises(ValueError):
        judge_trend([5], [5], PER_ROUND)
    with pytest.raises(ValueError):
        judge_trend([5, 5], [5], PER_ROUND)


def test_never_falls():
    assert check_never_falls("c", [1, 1, 3, 7]).passed
    failed = check_never_falls("c", [1, 3, 2])
    assert not failed.passed and "fell from 3 to 2" in failed.detail


def test_bounded_names_the_worst_sample():
    rows = [(0.1, 5, 3), (0.2, 9, 3), (0.3, 4, 4)]
    assert check_bounded("b", rows, allowance=6).passed
    failed = check_bounded("b", rows, allowance=2)
    assert not failed.passed and "t=0.200" in failed.detail and "limit 5" in failed.detail


def test_equals_with_tolerance():
    assert check_equals("e", 10, 11, 1, "x").passed
    assert not check_equals("e", 10, 12, 1, "x").passed


def test_combine_reports_expectation_and_failed_checks():
    trend = judge_trend([2, 2, 2], [18, 18, 18], PER_ROUND)
    verdict = combine(GROWTH, trend, [Check("cap", False, "too many")])
    assert not verdict.passed
    assert "expected growth, measured plateau" in verdict.summary and "cap failed: too many" in verdict.summary
    assert combine(PLATEAU, trend, [Check("cap", True, "ok")]).passed
    assert combine(None, trend, []).passed


def test_socket_listing_is_goleak_like():
    sockets = [(40002, "ESTABLISHED"), (40001, "TIME_WAIT"), (40000, "ESTABLISHED"), (40003, "CLOSE_WAIT"),
               (40004, "TIME_WAIT")]
    assert format_sockets(sockets, limit=2).splitlines() == [
        "  local port 40003  CLOSE_WAIT",
        "  local port 40000  ESTABLISHED",
        "  ... and 1 more held",
        "  closed by the client (churn, not held): 2 TIME_WAIT",
    ]


def test_a_hosts_rise_is_explained_only_by_what_that_host_had_in_flight():
    """The seed's faulty client on 3 hosts, a loaded soak's figures: one host kept 9 then 17
    sockets (every request) while the whole client's peak rose 15 -> 23; that host's own server
    saw at most 7 then 9 in flight. Judged by the whole client's peak the host was a plateau."""
    from types import SimpleNamespace

    from harness.clients import FaultyClient
    from harness.scenarios.seed import _per_host_checks

    hosts = ["127.0.0.2:1", "127.0.0.3:2", "127.0.0.4:3"]
    residuals = {hosts[0]: (9, 18), hosts[1]: (9, 17), hosts[2]: (8, 17)}
    own_peaks = {hosts[0]: (6, 8), hosts[1]: (7, 9), hosts[2]: (6, 7)}
    rounds = [{"residual_by_host": {h: residuals[h][k] for h in hosts},
               "peak_in_flight_by_host": {h: own_peaks[h][k] for h in hosts}} for k in range(2)]
    run = SimpleNamespace(hosts=hosts, client=FaultyClient())
    figures = SimpleNamespace()
    checks = _per_host_checks(run, SimpleNamespace(rounds=rounds), figures, 26, [15, 23])
    assert figures.verdict_by_host == dict.fromkeys(hosts, GROWTH)
    assert [c.passed for c in checks] == [True]
    # a host whose own peak rose as much as its residual did: a pool's growth, explained
    rounds[1]["peak_in_flight_by_host"][hosts[1]] = 15
    _per_host_checks(run, SimpleNamespace(rounds=rounds), figures, 26, [15, 23])
    assert figures.verdict_by_host[hosts[1]] == PLATEAU
