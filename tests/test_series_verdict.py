"""The time-series verdict for commands: Theil–Sen and the window floors."""
import random

import pytest

from harness.driving import fill
from harness.values import UsageError
from harness.judging import GROWTH, PLATEAU, UNDECIDED, judge_series, sample_longer, theil_sen
from harness.judging.series import MOST_EXTENSIONS

TIMES = [i * 0.05 for i in range(200)]  # 10 s at the default sample interval


def noisy(values, spread=4, seed=1):
    """Held sockets = what is kept + 0..spread requests in flight at that moment."""
    rng = random.Random(seed)
    return [v + rng.randint(0, spread) for v in values]


def test_theil_sen_ignores_outliers():
    xs = list(range(20))
    ys = [2 * x + 1 for x in xs]
    ys[5], ys[15] = 100, -100  # two wild points move least squares, not the median slope
    fit = theil_sen(xs, ys)
    assert fit.slope == 2 and fit.low <= 2 <= fit.high


def test_theil_sen_bounds_contain_zero_for_flat_noise():
    fit = theil_sen(TIMES, noisy([10] * len(TIMES)))
    assert fit.low <= 0 <= fit.high


def test_steady_leak_is_growth():
    trend = judge_series(TIMES, noisy([int(t * 3) for t in TIMES]), [4] * len(TIMES))
    assert trend.verdict == GROWTH, trend.reason


def test_slow_leak_one_socket_per_window_is_growth():
    # 10 s, 7.5 s judged in windows of 1.5 s: one socket a second is ~1.5 a window
    trend = judge_series(TIMES, noisy([int(t) for t in TIMES], spread=1), [1] * len(TIMES))
    assert trend.verdict == GROWTH, trend.reason


def test_steady_pool_is_plateau():
    trend = judge_series(TIMES, noisy([20] * len(TIMES)), [24] * len(TIMES))
    assert trend.verdict == PLATEAU, trend.reason


def test_pool_that_follows_its_peak_in_flight_is_plateau():
    # a pool keeps what its busiest moment needed; record bursts lift both together
    peaks = [16 + int(t / 2) for t in TIMES]
    trend = judge_series(TIMES, peaks, peaks)
    assert trend.verdict == PLATEAU, trend.reason
    assert judge_series(TIMES, peaks).verdict == GROWTH  # without the peaks the same floors would look like a leak


def test_leak_below_its_peak_in_flight_is_not_growth_yet():
    # rising by 5 but still under the 40 ever in flight: a pool could hold that much
    trend = judge_series(TIMES, [10 + int(t / 2) for t in TIMES], [40] * len(TIMES))
    assert trend.verdict != GROWTH, trend.reason


def test_a_plateau_without_peaks_does_not_speak_of_them():
    # a watched process has no in-flight figure: its reason must not cite one
    with_peaks = judge_series(TIMES, noisy([20] * len(TIMES)), [24] * len(TIMES))
    without = judge_series(TIMES, noisy([20] * len(TIMES)))
    assert with_peaks.verdict == without.verdict == PLATEAU
    assert "beyond the peak in flight" in with_peaks.reason and "peak" not in without.reason, without.reason


def test_rise_that_stopped_is_plateau():
    held = [10 if t < 4 else 16 for t in TIMES]  # one step up, then flat for two windows and more
    assert judge_series(TIMES, held).verdict == PLATEAU


# a stalled sampler (a loaded machine): no sample from 5 s to 6.9 s of 10, so a window of time (1.5 s from 2.5 s
# on) gets fewer than 3; the seen watch had 36 samples in 4.6 s, one window empty
STALLED = [t for t in TIMES if not 5.0 <= t < 6.9]


@pytest.mark.parametrize("shape, verdict", [("leak", GROWTH), ("pool", PLATEAU)])
def test_a_stalled_sampler_is_judged_by_windows_of_equal_sample_counts(shape, verdict):
    held = noisy([int(t * 3) for t in STALLED] if shape == "leak" else [20] * len(STALLED))
    trend = judge_series(STALLED, held)
    assert trend.verdict == verdict and "the sampler stalled" in trend.reason, trend.reason
    assert "the sampler stalled" not in judge_series(TIMES, noisy([20] * len(TIMES))).reason  # even samples: by time


def test_too_few_samples_is_undecided():
    trend = judge_series(TIMES[:10], [1] * 10)
    assert trend.verdict == UNDECIDED and "too few samples" in trend.reason


# an ambiguous rise: floors 0 -> 0 -> 5 -> 5 -> 6 rise by 6 but in only 2 of 4 steps, and have not stopped rising
AMBIGUOUS = [0 if t < 5.0 else 5 if t < 8.5 else 6 for t in TIMES]


def test_sampling_goes_on_while_only_samples_are_lacking_up_to_a_bound():
    too_few = judge_series(TIMES[:10], [1] * 10)
    ambiguous = judge_series(TIMES, AMBIGUOUS)
    assert too_few.too_few_samples and ambiguous.verdict == UNDECIDED and not ambiguous.too_few_samples, \
        ambiguous.reason
    # a loaded machine samples slowly: more time, up to MOST_EXTENSIONS times, then the verdict says undecided
    assert [sample_longer([too_few], n) for n in range(MOST_EXTENSIONS + 1)] == [True] * MOST_EXTENSIONS + [False]
    # ambiguous evidence: once; more of the same rarely settles it
    assert [sample_longer([ambiguous], n) for n in range(2)] == [True, False]
    assert [sample_longer([too_few, ambiguous], n) for n in range(2)] == [True, False]


def test_sampling_stops_once_decided_or_growing():
    plateau = judge_series(TIMES, noisy([20] * len(TIMES)))
    growth = judge_series(TIMES, noisy([int(t * 3) for t in TIMES]))
    too_few = judge_series(TIMES[:10], [1] * 10)
    assert (plateau.verdict, growth.verdict) == (PLATEAU, GROWTH)
    assert not sample_longer([plateau], 0) and not sample_longer([], 0)
    assert not sample_longer([growth, too_few], 0)  # one growing endpoint decides a watch
    assert sample_longer([plateau, too_few], 0)


def test_fill_replaces_only_its_placeholders():
    filled = fill("for i in ${x}; do curl {url}?n=$i {host}:{port}; done", "http://h:1/", "h", 1)
    assert filled == "for i in ${x}; do curl http://h:1/?n=$i h:1; done"


@pytest.mark.parametrize("command, needle", [("echo hi", "use {url}"), ("  ", "an empty command")])
def test_fill_rejects_a_command_that_cannot_reach_the_server(command, needle):
    with pytest.raises(UsageError, match=needle.replace("{", r"\{").replace("}", r"\}")):
        fill(command, "http://h:1/", "h", 1)


def _snapshot(unread):
    from harness.sampling import Snapshot
    return Snapshot(len(unread or ()), 0, 0, 0, None, (), None if unread is None else frozenset(unread))


def test_an_unread_answer_counts_in_flight_for_a_second_from_when_it_was_first_seen():
    from harness.sampling.recorder import UnreadAnswers
    unread = UnreadAnswers()
    assert unread.count(_snapshot({1, 2}), now=10.0) == 2
    assert unread.count(_snapshot({1, 2, 3}), now=10.0 + UnreadAnswers.FRESH_S) == 3  # 1 and 2 at their limit
    # never read: 1 and 2 stop counting; 3 was first seen later
    assert unread.count(_snapshot({1, 2, 3}), now=10.01 + UnreadAnswers.FRESH_S) == 1
    assert unread.count(_snapshot({3}), now=11.5) == 1
    # read, then a new answer on the same socket: its clock starts again
    assert unread.count(_snapshot(set()), now=12.0) == 0
    assert unread.count(_snapshot({3}), now=12.1) == 1
    assert unread.count(_snapshot(None), now=12.2) == 0  # a backend that cannot read queues


def test_the_recorder_adds_unread_answers_to_in_flight_and_its_peak_only_when_asked():
    from harness.sampling import SeriesRecorder

    class Counter:
        def __init__(self):
            self.next = []

        def snapshot(self):
            return _snapshot(self.next.pop(0))

    for count_unread in (True, False):
        counter = Counter()
        counter.next = [{5, 6, 7}, set()]
        recorder = SeriesRecorder(counter, 1.0, lambda: (1, 2), count_unread=count_unread)
        first, second = recorder.sample(), recorder.sample()
        if count_unread:
            assert (first.in_flight, first.in_flight_peak, first.unread) == (4, 4, 3)
            assert (second.in_flight, second.in_flight_peak, second.unread) == (1, 4, 0)  # the peak is kept
        else:
            assert [(s.in_flight, s.in_flight_peak, s.unread) for s in (first, second)] == [(1, 2, 0)] * 2


def test_a_command_is_judged_on_one_reading_of_samples_still_being_recorded():
    """At a command's deadline its samples are judged while the recorder's thread may still append
    to them: one reading, however many it makes (three readings of different lengths, in a loaded
    soak's run, raised ValueError and lost the run's result)."""
    from dataclasses import replace

    from harness.sampling import Sample
    from harness.scenarios.command import judge

    class StillRecording(list):
        def __iter__(self):  # a sample appended before each reading, as the recorder's thread may
            self.append(replace(self[-1], t=self[-1].t + 0.1))
            return super().__iter__()

    samples = StillRecording(Sample(t=i * 0.1, round=0, cycle=0, in_flight=0, in_flight_peak=1, established=5,
                                    time_wait=0, close_wait=0, other=0, server_established=None, label="")
                             for i in range(40))
    assert judge(samples).verdict == PLATEAU  # five held throughout
